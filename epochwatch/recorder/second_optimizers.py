"""Second optimizers of one training: a GAN's generator and critic, a main and an auxiliary head.

A custom loop's steps are its optimizer's updates (auto_epochs.py), and a new optimizer over
other variables is a new model's training: a new fit. Not when it is the same training's
second optimizer, whose updates are the same batches' steps. Right after the fit's first
update that is plain (an eager GAN updates both every batch). A few steps into the fit it is
not: a WGAN-GP updates its critic every batch and its generator every fifth (n_critic,
LynnHo's WGAN-GP#4), and the generator's first update at step 5 cut a five-step "epoch" and a
second "fit", both optimizers' updates then counted (55-60 steps for 50 batches). So its first
update is held: the training's second optimizer if the fit's optimizer updates again before it
does, a new model's if it updates again first (its first update then counted as its step).

And the steps are the updates of the optimizer that updates most often, whichever came first:
with the generator updated first in each group of five, the critic's updates were dropped as
the second optimizer's and an epoch of 50 batches read 10 steps.
"""

from __future__ import annotations

import weakref
from typing import Any

CO_STEPS = 16  # a second optimizer begins within the fit's first steps (n_critic is 5 or so)
MOST_OFTEN = 2  # a second optimizer updating this many times as often as the steps counted ...
AT_LEAST = 4  # ... and this many times in the epoch, is the one whose updates are the steps


class SecondOptimizers:
    """The training's second optimizers, and the new optimizer whose first update is held."""

    def __init__(self) -> None:
        self._co: weakref.WeakSet[Any] = weakref.WeakSet()
        self._main: weakref.ref[Any] | None = None  # the optimizer whose updates are the steps
        self._updates = 0  # the second optimizers' updates in the open epoch
        self._held: tuple[weakref.ref[Any], int, float] | None = None  # (it, total steps, when)
        self.late_step: float | None = None  # a held first update found to be a new model's step

    def __bool__(self) -> bool:
        return bool(self._co)

    def __contains__(self, owner: Any) -> bool:
        try:
            return owner in self._co
        except TypeError:
            return False

    def add(self, owner: Any, main: Any) -> None:
        """`owner` is a second optimizer of `main`'s training."""
        self._co.add(owner)
        self._main = weakref.ref(main)

    def held(self, owner: Any) -> bool:
        """Whether `owner`'s update is a held first update (counted as no step for now)."""
        return self._held is not None and self._held[0]() is owner

    def decide(self, owner: Any, total_steps: int, now: float) -> bool | None:
        """For a new optimizer over other variables a few steps into a fit: True once the
        fit's optimizer updated since its first update (the same training's second
        optimizer), False when it updates again first (a new model's: `late_step` is then its
        first update's time), None at its first update (held)."""
        held = self._held
        if held is None or held[0]() is not owner:
            self._held = (weakref.ref(owner), total_steps, now)
            return None
        self._held = None
        if total_steps > held[1]:
            return True
        self.late_step = held[2]
        return False

    def epoch_began(self) -> None:
        self._updates = 0

    def updated(self, owner: Any, steps: int) -> bool:
        """A second optimizer's update, with `steps` counted in the open epoch: True where it
        now is the optimizer whose updates are the steps (it updates most often)."""
        self._updates += 1
        main = self._main() if self._main is not None else None
        if main is None or self._updates < AT_LEAST or self._updates <= MOST_OFTEN * steps:
            return False
        self._co.discard(owner)
        self._co.add(main)
        self._main, self._updates = weakref.ref(owner), 0
        return True
