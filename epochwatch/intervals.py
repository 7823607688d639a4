"""Sub-epoch intervals: when a long epoch gets a record of its steps so far.

A run of one to three long epochs (big data sets, fine-tuning) gives a trend nothing to
stand on: the epoch is the wrong unit. So inside an epoch, every `period` seconds, the
hook writes an `interval` record (the steps since the last one, their times, the RSS
and the watched directories now), and the detectors judge leaks and slowdowns on those
too. The period adapts: it starts at MIN_PERIOD and, from each epoch's length, aims at
PER_EPOCH intervals per epoch; an epoch that runs long doubles it after MAX_PER_EPOCH,
so a run of any length gets enough points and a bounded number of records.

The per-step cost is what `due` allows: the caller compares a clock reading it already
took with `due`, and calls `fire` only when it has passed.
"""

from __future__ import annotations

import math

MIN_PERIOD = 0.2  # seconds: shorter epochs are judged by their epoch records
MAX_PERIOD = 600.0
PER_EPOCH = 32
MAX_PER_EPOCH = 64


class IntervalClock:
    def __init__(self, period: float = MIN_PERIOD) -> None:
        self.period = period
        self.due = math.inf  # perf_counter time of the next interval (inf: no epoch open)
        self._last = 0.0
        self._last_step = 0
        self._in_epoch = 0

    def begin_epoch(self, now: float) -> None:
        self._last = now
        self._last_step = 0
        self._in_epoch = 0
        self.due = now + self.period

    def fire(self, now: float, step: int) -> tuple[float, int, int]:
        """Close an interval at `now` after `step` steps of the epoch: (seconds, steps,
        index of the first step in it); schedules the next one."""
        seconds, steps, first = now - self._last, step - self._last_step, self._last_step
        self._last, self._last_step = now, step
        self._in_epoch += 1
        if self._in_epoch >= MAX_PER_EPOCH:
            self.period = min(MAX_PERIOD, self.period * 2)
            self._in_epoch = MAX_PER_EPOCH // 2
        self.due = now + self.period
        return seconds, steps, first

    def end_epoch(self, epoch_seconds: float) -> None:
        if epoch_seconds > 0:
            self.period = min(MAX_PERIOD, max(MIN_PERIOD, epoch_seconds / PER_EPOCH))
        self.due = math.inf


def step_summary(starts: list[float], first: int, stop: int) -> dict[str, float] | None:
    """Median and p90 of the durations of steps first..stop-1, each until the next step's
    start (`starts[stop]` is the step just begun): the interval's `step_seconds`."""
    return spread([starts[i + 1] - starts[i] for i in range(first, min(stop, len(starts) - 1))])


def spread(durations: list[float], *, extremes: bool = False) -> dict[str, float] | None:
    """Median and p90 of step durations (with `extremes`, min and max too); None for none."""
    ordered = sorted(durations)
    n = len(ordered)
    if not n:
        return None
    middle = {"median": round(ordered[n // 2], 7), "p90": round(ordered[min(n - 1, int(n * 0.9))], 7)}
    return {"min": round(ordered[0], 7), **middle, "max": round(ordered[-1], 7)} if extremes else middle
