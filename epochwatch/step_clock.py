"""Steps of a custom loop, marked with `with hook.step():`, and the time between them.

In a custom loop the batch is fetched between steps (`for x, y in dataset:` runs before the
block), so the time from the epoch's start to its first step, and from the end of each step
to the start of the next, is the time the loop waited for its input (plus whatever else the
loop does outside its steps: logging, a Python-side metric). The epoch record gets it as
`input_wait_seconds` (source `steps`), with the step count and steps per second.

Two clock reads and a few additions per step, no allocation: the context manager is one
reusable object.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any


class StepClock:
    """Reused for every step of the process's loop epochs (one loop at a time)."""

    __slots__ = ("_end", "_start", "steps", "waited")

    def __init__(self) -> None:
        self.begin(time.perf_counter())

    def begin(self, now: float) -> None:
        self._start = now
        self._end = now  # the epoch's start counts as the end of a step 0
        self.steps = 0
        self.waited = 0.0

    def __enter__(self) -> StepClock:
        self.waited += time.perf_counter() - self._end
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._end = time.perf_counter()
        self.steps += 1

    def fields(self, end: float) -> dict[str, Any]:
        """The epoch record's fields; none when the loop marked no step."""
        if not self.steps:
            return {}
        seconds = end - self._start
        out: dict[str, Any] = {
            "steps": self.steps,
            "input_wait_seconds": round(self.waited, 6),
            "input_wait_source": "steps",
        }
        if seconds > 0:
            out["steps_per_second"] = round(self.steps / seconds, 3)
        return out
