"""The `interval` record a long epoch gets a few times over: its steps since the last one,
their times, the RSS and the watched directories now (when one is due:
`intervals.IntervalClock`, which this holds for the epoch's step hooks to compare with).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from epochwatch.guard import Guard
from epochwatch.intervals import IntervalClock, step_summary
from epochwatch.trace import schema


class IntervalWriter:
    """Builds interval records; `dirs()` is the run's directory watcher (or None)."""

    def __init__(self, guard: Guard, dirs: Callable[[], Any]) -> None:
        self._guard = guard
        self._dirs = dirs
        self.clock = IntervalClock()  # when the open epoch's next interval record is due
        self._index = 0

    def record(self, epoch: Any, run_id: str, starts: list[float], now: float) -> dict[str, Any] | None:
        """The record for `epoch`'s steps since the last interval: `starts` are its step start
        times so far, the newest being the step that begins at `now`. Its cost so far is
        `overhead_seconds` and is added to the epoch's overhead."""
        t0 = time.perf_counter()
        done = len(starts) - 1  # steps completed: the newest has only begun
        seconds, steps, first = self.clock.fire(now, done)
        if steps <= 0:
            return None
        rec = schema.record(schema.INTERVAL, run_id, epoch=epoch.number, index=self._index)
        self._index += 1
        if epoch.fit is not None:
            rec["fit"] = epoch.fit
        rec["source"] = epoch.source
        rec["step"] = done
        rec["steps"] = steps
        rec["seconds"] = round(seconds, 6)
        spread = step_summary(starts, first, done)
        if spread:
            rec["step_seconds"] = spread
        rss = self._guard.run("host sampler", _own_rss, None)
        if rss is not None:
            rec["host"] = {"rss_bytes": rss}
        dirs = self._dirs()
        if dirs is not None:
            totals = self._guard.run("directory watching", dirs.totals, None)
            if totals:
                rec["dirs"] = totals
        cost = time.perf_counter() - t0
        rec["overhead_seconds"] = round(cost, 6)
        epoch.overhead += cost
        return rec


def _own_rss() -> int | None:
    from epochwatch.samplers.own_rss import own_rss_bytes

    return own_rss_bytes()
