"""Where a training loop tells an armed tracemalloc slice that a step begins.

A slice (slices.py) must start a little before an epoch ends. Predicting that moment from
the last epochs' lengths misses by their spread, and every millisecond traced too early
costs two or three. A loop that knows its step numbers does better: Keras' FitWatch
(integrations/keras_callback.py) compares each train batch with `STEPS.at` inline (what
`begin` does, without its call: tens of nanoseconds) and fires the slice at the epoch's
last steps; a `hook.epoch()` loop's counted steps do the same on their slow path
(recorder/auto_epochs.py). No imports: the callback imports it with the hook.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

NEVER = sys.maxsize


class StepAnchor:
    """One per process (the hook follows one training thread)."""

    def __init__(self) -> None:
        self.at = NEVER  # the batch index whose begin starts the armed slice
        self.active = False  # a loop that fires it is running (a Keras fit, counted loop steps)
        self._start: Callable[[], None] | None = None

    def begin(self, batch: int) -> None:
        if batch >= self.at:
            self.fire()

    def fire(self) -> None:
        start, self._start, self.at = self._start, None, NEVER
        if start is not None:
            try:
                start()
            except Exception:  # never into the training loop; the slice is a miss
                return

    def arm(self, at: int, start: Callable[[], None]) -> None:
        self._start, self.at = start, at

    def disarm(self) -> None:
        self._start, self.at = None, NEVER


STEPS = StepAnchor()
