"""Sub-epoch intervals: the step clock of a custom loop's epoch and the `interval` record
a long epoch gets a few times over (when is due: `intervals.IntervalClock`).

A mix-in of the Recorder: it shares the Recorder's lock, open epoch and sink.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from epochwatch.guard import Guard
from epochwatch.intervals import IntervalClock, step_summary
from epochwatch.trace import schema


class Intervals:
    run_id: str
    guard: Guard
    clock: IntervalClock
    _lock: threading.RLock
    _epoch: Any
    _sink: Any
    _dirs: Any
    _analysis: Any
    _intervals: int

    if TYPE_CHECKING:  # the Recorder's, not this mix-in's

        def _write(self, rec: dict[str, Any]) -> None: ...
        def _submit(self, analysis: Any, rec: dict[str, Any], judge: bool = True) -> None: ...
        @property
        def remote_detection(self) -> bool: ...

    def step(self) -> None:
        """One step of a custom loop's open epoch began (hook.step()): a clock read, an
        append and a compare, and an interval record when one is due."""
        epoch = self._epoch
        if epoch is None:
            return
        now = time.perf_counter()
        epoch.steps.append(now)
        if now >= self.clock.due:
            self.interval(epoch.steps, now)

    def interval(self, starts: list[float], now: float) -> None:
        """Write an `interval` record for the steps since the last one: `starts` are the
        epoch's step start times so far, the newest being the step that begins at `now`."""
        t0 = time.perf_counter()
        with self._lock:
            epoch = self._epoch
            if epoch is None or self._sink is None:
                self.clock.end_epoch(0.0)
                return
            done = len(starts) - 1  # steps completed: the newest has only begun
            seconds, steps, first = self.clock.fire(now, done)
            if steps <= 0:
                return
            rec = schema.record(schema.INTERVAL, self.run_id, epoch=epoch.number, index=self._intervals)
            self._intervals += 1
            if epoch.fit is not None:
                rec["fit"] = epoch.fit
            rec["source"] = epoch.source
            rec["step"] = done
            rec["steps"] = steps
            rec["seconds"] = round(seconds, 6)
            spread = step_summary(starts, first, done)
            if spread:
                rec["step_seconds"] = spread
            rss = self.guard.run("host sampler", _own_rss, None)
            if rss is not None:
                rec["host"] = {"rss_bytes": rss}
            if self._dirs is not None:
                dirs = self.guard.run("directory watching", self._dirs.totals, None)
                if dirs:
                    rec["dirs"] = dirs
            epoch.interval_seconds += seconds
            cost = time.perf_counter() - t0
            rec["overhead_seconds"] = round(cost, 6)
            epoch.overhead += cost
            self._write(rec)
            analysis = self._analysis
            if analysis is not None:  # judged like an epoch, on the analysis thread
                self._submit(analysis, rec, judge=not self.remote_detection)


def _own_rss() -> int | None:
    from epochwatch.samplers.host import own_rss_bytes

    return own_rss_bytes()
