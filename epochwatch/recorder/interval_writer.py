"""The `interval` record a long epoch gets a few times over: its steps since the last one,
their times, the RSS, the process's CPU time and its threads' wait for a CPU since the last
one, and the watched directories now (when one is due: `intervals.IntervalClock`, which this
holds for the epoch's step hooks to compare with).

The CPU figures let a slowdown judged on intervals tell a busier host from the run's own
work: a DQN loop beside two other jobs on two cores read "step time grows 118.5% per epoch
(judged on sub-epoch intervals)" over its first two long epochs, where epochs are too few
to judge the CPU from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from epochwatch.explain.looking import LOOKING
from epochwatch.guard import Guard
from epochwatch.intervals import IntervalClock, step_summary
from epochwatch.samplers import cpu_wait
from epochwatch.samplers.own_rss import own_rss_bytes
from epochwatch.trace import schema

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]


class IntervalWriter:
    """Builds interval records; `dirs()` is the run's directory watcher (or None)."""

    def __init__(self, guard: Guard, dirs: Callable[[], Any]) -> None:
        self._guard = guard
        self._dirs = dirs
        self.clock = IntervalClock()  # when the open epoch's next interval record is due
        self._index = 0
        self._cpu: float | None = None  # the process's CPU seconds at the last record
        self._waited = cpu_wait.Since()

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
        if LOOKING.since_last():  # the hook's own capture or slice: left out of what is judged
            rec["looking_inside"] = True
        spread = step_summary(starts, first, done)
        if spread:
            rec["step_seconds"] = spread
        host = self._guard.run("host sampler", self._host, None)
        if host:
            rec["host"] = host
        dirs = self._dirs()
        if dirs is not None:
            totals = self._guard.run("directory watching", dirs.totals, None)
            if totals:
                rec["dirs"] = totals
        cost = time.perf_counter() - t0
        rec["overhead_seconds"] = round(cost, 6)
        epoch.overhead += cost
        return rec

    def _host(self) -> dict[str, Any]:
        """RSS now; CPU seconds and CPU wait since the last interval record (from the second)."""
        out: dict[str, Any] = {}
        rss = own_rss_bytes()
        if rss is not None:
            out["rss_bytes"] = rss
        use = resource.getrusage(resource.RUSAGE_SELF) if resource is not None else None
        cpu = use.ru_utime + use.ru_stime if use is not None else None
        if cpu is not None and self._cpu is not None:
            out["cpu_seconds"] = round(max(0.0, cpu - self._cpu), 6)
        self._cpu = cpu
        waited = self._waited()
        if waited is not None:
            out["cpu_wait_seconds"] = round(waited, 6)
        return out
