"""Where a training loop tells explain's armed windows that a step begins.

A slice (slices.py) must start a little before an epoch ends. Predicting that moment from
the last epochs' lengths misses by their spread, and every millisecond traced too early
costs two or three. A profiler capture (captures.py) wants whole steps and no more: each
step it records costs a third more. A loop that knows its step numbers does better: Keras'
FitWatch (integrations/keras_callback.py) compares each train batch with `STEPS.at` inline
(what `begin` does, without its call: tens of nanoseconds) and fires what is armed for that
batch; a `hook.epoch()` loop's counted steps do the same on their slow path
(recorder/auto_epochs.py). No imports: the callback imports it with the hook.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

NEVER = sys.maxsize


class StepAnchor:
    """One per process (the hook follows one training thread). Each owner (a slicer, the
    captures) has at most one start armed; `at` is the earliest batch any waits for. A
    start armed for this loop only (a slice at this epoch's last steps) is disarmed when the
    loop ends; one that wants the next such step of any loop (a capture: the next fit's
    second step, in a loop of fits) stays."""

    def __init__(self) -> None:
        self.at = NEVER  # the batch index whose begin starts the next armed part
        self.active = False  # a loop that fires it is running (a Keras fit, counted loop steps)
        # owner: (the batch whose begin starts it, the start, armed for this loop only)
        self._armed: dict[object, tuple[int, Callable[[], None], bool]] = {}

    def begin(self, batch: int) -> None:
        if batch >= self.at:
            self.fire()

    def fire(self) -> None:
        """Batch `at` begins: what waits for it starts (a later batch's start stays armed)."""
        due = [key for key, (at, _start, _loop) in self._armed.items() if at <= self.at]
        starts = [self._armed.pop(key)[1] for key in due]
        self._reset()
        for start in starts:
            try:
                start()
            except Exception:  # never into the training loop; the part is a miss
                continue

    def arm(self, at: int, start: Callable[[], None], owner: object = None, this_loop: bool = True) -> None:
        self._armed[owner] = (at, start, this_loop)
        self._reset()

    def disarm(self, owner: object = None) -> None:
        self._armed.pop(owner, None)
        self._reset()

    def loop_ended(self) -> None:
        """A fit ended: the starts armed for its steps only go."""
        self._armed = {key: armed for key, armed in self._armed.items() if not armed[2]}
        self._reset()

    def _reset(self) -> None:
        self.at = min((armed[0] for armed in self._armed.values()), default=NEVER)


STEPS = StepAnchor()
