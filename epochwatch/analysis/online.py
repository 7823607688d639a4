"""Online detection: feed records as they come, get new `finding` records back.

The hook (embedded mode) and the daemon call `add` for every record of a run. Epoch
records trigger one Engine step over a bounded run (the newest SERIES_LIMIT epochs of
compact series, the newest few whole records), so the cost per epoch stays flat however
long the run; other records only update state. A finding is returned once per (kind,
target), after it held for its detector's persistence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from epochwatch.analysis.engine import Engine, FitReplay
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.restore.parents import ParentCache
from epochwatch.analysis.run import Run
from epochwatch.analysis.series import EpochSeries
from epochwatch.analysis.view import RunAtEpoch
from epochwatch.trace import schema

SERIES_LIMIT = 256  # epochs of series kept; detector windows are at most ~100
EPOCH_RECORDS = 16  # whole epoch records kept, for detectors that read records


class OnlineAnalyzer:
    """updates: also return episode updates (a finding again, with `update` n, when its
    problem grew or ended): the hook and the daemon write them to the trace; callers
    that want each finding once leave it off. parents: where restores find their parent
    runs (the daemon's, read as the run's user); by default this run's own cache."""

    def __init__(
        self, run_start: Mapping[str, Any] | None = None, *, updates: bool = False, parents: Any = None
    ) -> None:
        self.updates = updates
        run_id = str(run_start.get("run_id", "run")) if run_start else "run"
        self.run = Run(
            run_id=run_id,
            series=EpochSeries(limit=SERIES_LIMIT),
            max_epoch_records=EPOCH_RECORDS,
            intervals=EpochSeries(limit=SERIES_LIMIT, restarts=False),
            fit_series=EpochSeries(limit=SERIES_LIMIT, restarts=False),
        )
        self.engine = Engine()
        self.engine.catch_up = True  # its evaluations skip epochs on a budget (see Engine.step)
        self.interval_engine = self.engine.interval_engine()
        self.parents = parents if parents is not None else ParentCache()  # read once, not per epoch
        self.fits = FitReplay(self.run, self.engine.fit_engine(), self.parents)
        if run_start:
            self.add(dict(run_start))

    def add(self, record: Mapping[str, Any], *, evaluate: bool = True) -> list[dict[str, Any]]:
        """Take one trace record; return finding records that are new with it.

        evaluate=False only records the epoch (no detector step): the hook uses it to keep
        online detection within a time budget on very short epochs.
        """
        rec = record if isinstance(record, dict) else dict(record)
        kind = rec.get("type")
        if kind == schema.RUN_START and self.run.start is not None:
            return []
        if kind == schema.RUN_START or (self.run.start is None and self.run.run_id == "run"):
            rid = rec.get("run_id")
            if isinstance(rid, str) and rid:
                self.run.run_id = rid
        if kind in schema.FINDINGS:
            return []  # our own output coming back (daemon reads the trace it writes)
        self.run.add(rec)
        if kind == schema.EPOCH and "loop_epoch" in rec:
            return []  # a fit's epoch nested in a loop's epoch: judged with the loop's epoch
        if kind == schema.INTERVAL and evaluate and rec.get("looking_inside") is not True:
            view = RunAtEpoch(self.run.interval_view(), parents=self.parents, unit="interval")
            return self._records(self.interval_engine.step(view))
        if kind != schema.EPOCH or not evaluate:
            return []
        # The fits that ended before this epoch, as a sequence (report replays them the same way).
        found = self.fits.until(self.run.series.count)
        view = RunAtEpoch(self.run, parents=self.parents)
        return self._records(found + self.engine.step(view))

    def finish(self) -> list[dict[str, Any]]:
        """The verdict at the run's end: what holds now is reported without waiting for its
        persistence. Call before writing run_end."""
        found: list[Finding] = []
        if self.run.series.count and self.engine.evaluated < self.run.series.count - 1:  # newest skipped:
            found += self.fits.until(self.run.series.count)  # judge them first, as report does
            found += self.engine.step(RunAtEpoch(self.run, parents=self.parents), replay_only=True)
        found += self.fits.final()
        if self.run.intervals.count:
            view = RunAtEpoch(self.run.interval_view(), parents=self.parents, unit="interval")
            found += self.interval_engine.step(view, replay_only=True, final=True)
        if self.run.series.count:
            found += self.engine.step(
                RunAtEpoch(self.run, parents=self.parents), replay_only=True, final=True
            )
        return self._records(found)

    def _records(self, found: list[Finding]) -> list[dict[str, Any]]:
        return [f.to_record(self.run.run_id) for f in found if self.updates or not f.update]
