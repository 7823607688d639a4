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
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any

# A second optimizer begins within the fit's first steps (n_critic is 5 or so). Few: a new
# model's held first update is counted as its step, but what it traced lands in the epoch
# record before (a new model, optimizer and tf.function per 16-step client of flower#700's
# FedAvg, held at 16, gave every client's trace to the client before it).
CO_STEPS = 8
MOST_OFTEN = 2  # a second optimizer updating this many times as often as the steps counted ...
AT_LEAST = 4  # ... and this many times in the epoch, is the one whose updates are the steps


@dataclass(frozen=True)
class Held:
    """A new optimizer's first update, held: what telling its training needs."""

    owner: weakref.ref[Any]
    total_steps: int  # the run's steps counted when it was held
    at: float  # when (perf_counter): its step's time, if it is a new model's
    main: weakref.ref[Any]  # the fit's optimizer then
    serial: int  # the fit's model serial
    variables: frozenset[int]  # the fit's variables and its
    own: frozenset[int]  # its own variables
    second: bool = False  # told: the same training's second optimizer


class SecondOptimizers:
    """The training's second optimizers, and the new optimizer whose first update is held."""

    def __init__(self) -> None:
        self._co: weakref.WeakSet[Any] = weakref.WeakSet()
        self._main: weakref.ref[Any] | None = None  # the optimizer whose updates are the steps
        self._updates = 0  # the second optimizers' updates in the open epoch
        self._held: Held | None = None
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

    def hold(
        self,
        owner: Any,
        total_steps: int,
        main: Any,
        serial: int,
        variables: frozenset[int],
        own: frozenset[int],
    ) -> None:
        """Hold `owner`'s first update, a few steps into `main`'s fit, till its next."""
        self._held = Held(
            weakref.ref(owner), total_steps, perf_counter(), weakref.ref(main), serial, variables, own
        )

    def held(self, owner: Any) -> bool:
        """Whether `owner`'s update is a held first update (counted as no step for now)."""
        return self._held is not None and self._held.owner() is owner

    def decide(self, owner: Any, total_steps: int) -> Held | None:
        """At the next update of a held optimizer (whether or not it says what it updates: a
        step function's calls after its trace do not): `second` once the fit's optimizer
        updated since (the same training), else a new model's (`late_step` is then its
        first update's time). None for any other optimizer."""
        held = self._held
        if held is None or held.owner() is not owner:
            return None
        self._held = None
        if total_steps > held.total_steps:
            return replace(held, second=True)
        self.late_step = held.at
        return held

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
