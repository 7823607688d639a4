"""A run as the analysis sees it: one trace file folded into plain lists of records.

Epoch, save, restore and finding records are kept (a run has thousands at most);
1 Hz samples are not (a long run has millions): only their count and the most recent
ones stay, so loading a run costs memory in epochs, not in hours of sampling.

Every epoch is also folded into `series` (compact per-epoch columns, see
epochwatch.analysis.series), which is what the detectors and the report's epoch table
read. With `max_epoch_records` set, `epochs` keeps only the first and the most recent
whole records (`epochs_dropped` counts the rest) while `series` still has every epoch:
that is how `epochwatch report` reads a trace of any length in bounded memory.
"""

from __future__ import annotations

import os
import sys
import zlib
from array import array
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from epochwatch.analysis.ledger import Ledger
from epochwatch.analysis.retrace_count import RetraceCount
from epochwatch.analysis.series import EpochSeries
from epochwatch.analysis.series import number as _number
from epochwatch.trace import schema
from epochwatch.trace.reader import ReadStats, iter_records

Record = dict[str, Any]
RECENT_SAMPLES = 600
FITS_KEPT = 256  # fit_start / fit_end records a bounded (online) run keeps: loops of 100k fits
# ... of which the newest keep their `input_stats` (most of a fit_start's size, 5 kB of
# JSON for 64 features; read only for the fit a restore resumes, judged within its epochs).
FIT_STATS_KEPT = 8
# Interval records folded into the interval series of an unbounded (offline) run: they
# matter for runs of few long epochs; a run with more has epoch records to judge.
MAX_INTERVALS = 20_000


@dataclass
class Run:
    run_id: str
    path: Path | None = None
    start: Record | None = None
    fits: list[Record] = field(default_factory=list)
    epochs: list[Record] = field(default_factory=list)
    saves: list[Record] = field(default_factory=list)
    restores: list[Record] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)  # the trace's own finding records, folded
    retraces: RetraceCount = field(default_factory=RetraceCount)  # new traces, as every view counts them
    notices: list[Record] = field(default_factory=list)
    explains: list[Record] = field(default_factory=list)  # `explain` records (analysis/explained.py)
    end: Record | None = None
    recent_samples: deque[Record] = field(default_factory=lambda: deque(maxlen=RECENT_SAMPLES))
    stats: ReadStats = field(default_factory=ReadStats)
    series: EpochSeries = field(default_factory=EpochSeries)
    max_epoch_records: int | None = None
    epochs_dropped: int = 0
    # How many epochs had been recorded when each save / restore came (aligned with
    # saves / restores): where they sit among the epochs, also when `epochs` is bounded.
    save_positions: list[int] = field(default_factory=list)
    restore_positions: list[int] = field(default_factory=list)
    # Sub-epoch `interval` records as their own series (see epochwatch/intervals.py), and
    # for each, how many epochs had been recorded when it came (replay order).
    intervals: EpochSeries = field(default_factory=lambda: EpochSeries(restarts=False))
    interval_positions: array[int] = field(default_factory=lambda: array("l"))
    # The interval series' indexes of the first point after each stretch of intervals the
    # hook's own look inside cost (`looking_inside`, left out): what it left in RSS shows as
    # the rise into that point (detectors/host_memory.py).
    looked_after: list[int] = field(default_factory=list)
    looking: bool = False  # the newest interval record was such a one
    # ... and the new traces those left out made (and their graph building), carried to the
    # next interval kept: a per-epoch retrace in a looked-inside stretch is still a retrace
    # (pix2pix's retrace_storm was said twice on a loaded host, its RSS a "leak" beside it).
    _looked_traces: dict[str, float] | None = None
    # The epoch series' indexes of the epochs the hook looked inside (`looking_inside`): kept
    # in the series (their time is the run's, less their overhead), but the RSS their look
    # left is the hook's (detectors/host_memory.py).
    looked_epochs: list[int] = field(default_factory=list)
    # Fits (fit_end records) and, per fit index, the new tf.function traces of its epochs:
    # repeated fits in one process are judged as a sequence (models_in_loop).
    fit_ends: list[Record] = field(default_factory=list)
    fit_end_positions: list[int] = field(default_factory=list)  # epochs recorded before each
    fit_traces: dict[int, float] = field(default_factory=dict)
    fit_ends_dropped: int = 0  # bounded runs (online) keep the newest FITS_KEPT fits' records
    nested_epochs: int = 0  # epochs of fits nested in a custom loop's epochs (not in `series`)
    # One point per fit (from its fit_end): what each fit of a loop of fits leaves behind
    # (RSS, seconds), judged as a sequence of its own (unit "fit").
    fit_series: EpochSeries = field(default_factory=lambda: EpochSeries(restarts=False))
    # In an interval view (interval_view), the run's epoch series: what intervals do not
    # carry (the process's CPU time, the host's demand) is read from the epochs they fall in.
    epoch_series: EpochSeries | None = None
    last_epoch_number: int = -1  # the newest epoch number seen (a nested fit's: its loop's)
    last_host: Record = field(default_factory=dict)  # the newest epoch's host block (limits)
    last_dirs: Any = None  # ... and its watched directories (what a fit of a loop left on disk)

    def interval_view(self) -> Run:
        """This run with its interval series in place of the epoch series: what the
        detectors judge when they judge intervals (the lists are shared, not copied)."""
        return replace(self, series=self.intervals, epoch_series=self.series)

    def fit_view(self) -> Run:
        """This run with one point per fit in place of the epoch series (unit "fit")."""
        return replace(self, series=self.fit_series)

    def _bound(self, records: list[Record], positions: list[int]) -> None:
        """A bounded (online) run keeps the newest FITS_KEPT saves or restores: a server that
        loads its model per request writes one for every request."""
        if self.max_epoch_records is not None and len(records) > 2 * FITS_KEPT:
            drop = len(records) - FITS_KEPT
            del records[:drop], positions[:drop]

    def footprint_bytes(self) -> int:
        """An estimate of what this Run holds (the online analyzer's, in the hook: part of
        `hook_bytes`): its series' columns exactly, its whole records at the size of the
        newest of each kind (a record is a few hundred bytes to a few kB)."""
        total = self.series.nbytes() + self.intervals.nbytes() + self.fit_series.nbytes()
        for records in (self.epochs, self.fits, self.fit_ends, self.saves, self.restores, self.notices):
            if records:
                total += len(records) * _record_bytes(records[-1])
        stats = self.fits[-1].get("input_stats") if self.fits else None
        if stats is not None and self.max_epoch_records is not None:  # the older fits' are gone
            total -= max(0, len(self.fits) - FIT_STATS_KEPT - 1) * _record_bytes(stats)
        return total

    @property
    def findings(self) -> list[Record]:
        """The finding records the trace carries, each (kind, target) as last reported."""
        return self.ledger.records()

    @property
    def ended(self) -> str:
        """How the run ended, as the trace says; 'abruptly' when it never said."""
        if self.end is None:
            return "abruptly"
        return str(self.end.get("ended", "unknown"))

    def add(self, rec: Record) -> None:
        kind = rec.get("type")
        if kind == schema.EPOCH:
            self._count_fit_traces(rec)
            self.retraces.add(rec)
            number = rec.get("loop_epoch", rec.get("epoch"))
            if isinstance(number, int) and not isinstance(number, bool):
                self.last_epoch_number = number
            host = rec.get("host")
            if isinstance(host, dict):
                self.last_host = host
            if rec.get("dirs"):
                self.last_dirs = rec["dirs"]
            if "loop_epoch" in rec:
                # A fit's epoch inside a custom loop's epoch (k-fold, sweeps): the loop's epoch
                # is the unit; the fit is judged with the other fits (models_in_loop).
                self.nested_epochs += 1
                return
            self.series.add_epoch(rec)
            if rec.get("looking_inside") is True:
                self.looked_epochs.append(self.series.count - 1)
            self.epochs.append(rec)
            cap = self.max_epoch_records
            if cap is not None and len(self.epochs) > cap:
                head = max(1, cap // 4)
                drop = max(1, min(len(self.epochs) - cap + cap // 4, len(self.epochs) - head - 1))
                del self.epochs[head : head + drop]
                self.epochs_dropped += drop
        elif kind == schema.INTERVAL:
            if rec.get("looking_inside") is True:
                self.looking = True  # the hook's own profiler capture or tracemalloc slice
                self._looked_traces = _traces_with(self._looked_traces, rec.get("retraces"))
                return
            if self.looking:
                self.looking = False
                self.looked_after.append(self.intervals.count)
            if self._looked_traces is not None:  # what traced meanwhile traced before this point
                rec = {**rec, "retraces": _traces_with(self._looked_traces, rec.get("retraces"))}
                self._looked_traces = None
            host = rec.get("host")
            if isinstance(host, dict):  # where the epoch it falls in began (series.note_rss)
                self.series.note_rss(_number(host.get("rss_bytes")))
            if self.intervals.limit is None and self.intervals.count >= MAX_INTERVALS:
                return
            self.intervals.add_epoch(rec)
            if self.intervals.limit is None:
                self.interval_positions.append(self.series.count)
        elif kind == schema.SAMPLE:
            self.recent_samples.append(rec)
            self.series.add_sample(rec)
        elif kind == schema.RUN_START:
            if self.start is None:
                self.start = rec
        elif kind == schema.FIT_START:
            self.fits.append(rec)
            if self.max_epoch_records is not None and len(self.fits) > FIT_STATS_KEPT + 1:
                old = self.fits[-FIT_STATS_KEPT - 1]  # the first keeps all: the run's own
                self.fits[-FIT_STATS_KEPT - 1] = {k: v for k, v in old.items() if k != "input_stats"}
            if self.max_epoch_records is not None and len(self.fits) > 2 * FITS_KEPT:
                del self.fits[1 : len(self.fits) - FITS_KEPT]
        elif kind == schema.FIT_END:
            self.fit_ends.append(rec)
            self.fit_end_positions.append(self.series.count)
            start = next((f for f in reversed(self.fits) if f.get("fit") == rec.get("fit")), {})
            point = fit_point(rec, self.last_epoch_number, self.last_host, self.last_dirs)
            self.fit_series.add_epoch({**point, "config": work_of(start)})
            if self.max_epoch_records is not None and len(self.fit_ends) > 2 * FITS_KEPT:
                drop = len(self.fit_ends) - FITS_KEPT
                del self.fit_ends[:drop], self.fit_end_positions[:drop]
                self.fit_ends_dropped += drop
        elif kind == schema.SAVE:
            self.saves.append(rec)
            self.save_positions.append(self.series.count)
            self._bound(self.saves, self.save_positions)
        elif kind == schema.RESTORE:
            self.restores.append(rec)
            self.restore_positions.append(self.series.count)
            self._bound(self.restores, self.restore_positions)
        elif kind in schema.FINDINGS:
            self.ledger.take(rec)
        elif kind == schema.NOTICE:
            self.notices.append(rec)
        elif kind == schema.EXPLAIN:
            self.explains.append(rec)
        elif kind == schema.RUN_END:
            self.end = rec

    def _count_fit_traces(self, rec: Record) -> None:
        fit, retraces = rec.get("fit"), rec.get("retraces")
        if fit is None and rec.get("source") == "auto" and self.fits:
            # A custom loop's automatic epoch: its optimizer's fit is the one open (cut as
            # a new optimizer begins, before the new fit_start), if any.
            last = self.fits[-1].get("fit")
            ended = self.fit_ends[-1].get("fit") if self.fit_ends else None
            fit = last if self.fits[-1].get("source") == "optimizer" and last != ended else None
        new = retraces.get("new") if isinstance(retraces, dict) else None
        if isinstance(fit, int) and isinstance(new, int | float) and not isinstance(new, bool):
            self.fit_traces[fit] = self.fit_traces.get(fit, 0.0) + new


def _traces_with(carried: dict[str, float] | None, block: Any) -> dict[str, float]:
    """An interval's `retraces` block with what `carried` (left-out intervals') adds."""
    out = dict(block) if isinstance(block, dict) else {}
    for key in ("new", "graph_build_seconds"):
        extra = (carried or {}).get(key, 0.0)
        mine = out.get(key)
        out[key] = (mine if isinstance(mine, int | float) and not isinstance(mine, bool) else 0) + extra
    return out


def _record_bytes(rec: Any, depth: int = 0) -> int:
    """Deep size of one record (dicts, lists and scalars; bounded depth)."""
    size = sys.getsizeof(rec)
    if depth < 6 and isinstance(rec, dict):
        size += sum(_record_bytes(k, depth + 1) + _record_bytes(v, depth + 1) for k, v in rec.items())
    elif depth < 6 and isinstance(rec, list | tuple):
        size += sum(_record_bytes(v, depth + 1) for v in rec)
    return size


def _per_epoch(rec: Record) -> float | None:
    seconds, epochs = rec.get("seconds"), rec.get("epochs_completed")
    if not isinstance(seconds, int | float) or not isinstance(epochs, int) or isinstance(epochs, bool):
        return None
    return float(seconds) / epochs if epochs > 0 else None


LIMITS = ("sys_total_bytes", "memory_limit_bytes")
# The host's demand for CPU at the fit's newest epoch end: whether other tasks wanted the CPU.
DEMAND = ("runnable", "cpus", "cpu_pressure_some_seconds")


def work_of(fit_start: Record) -> float:
    """What one epoch of a fit computes, as a number equal for equal work: the model's size,
    the batch, the steps per epoch and the planned epochs (whose first, compiling, epoch is
    in the time per epoch). A sweep's fits of other sizes are no series of the same work."""
    got = fit_start.get("model")
    model: Record = got if isinstance(got, dict) else {}
    work = (
        model.get("params"),
        fit_start.get("batch_size"),
        fit_start.get("steps_per_epoch"),
        fit_start.get("epochs"),
    )
    return float(zlib.crc32(repr(work).encode()))


def model_int(fit_start: Any, field: str) -> int | None:
    """An integer of a fit_start's `model` block (`serial`, `params`, `trainable_params`)."""
    model = fit_start.get("model") if isinstance(fit_start, dict) else None
    n = model.get(field) if isinstance(model, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def fit_point(rec: Record, epoch: int, host: Record, dirs: Any = None) -> Record:
    """A fit_end as one point of the fit series: the RSS it left behind, its seconds and CPU
    seconds, the memory limits, CPU demand and watched directories of the newest epoch (a save after a fit shows in
    the next fit's epochs: one fit late) and the run's newest epoch number (what a finding
    on fits is dated by). Point i is fit_ends[i]."""
    return {
        **({"dirs": dirs} if dirs else {}),
        "epoch": epoch,
        "source": "fits",  # one segment: the first fit is the series' warm-up
        "seconds": rec.get("seconds"),
        "steps": rec.get("epochs_completed"),
        "step_seconds": {"median": _per_epoch(rec)},  # the fit's time per epoch (slowdown)
        "host": {
            **{k: host[k] for k in LIMITS + DEMAND if k in host},
            "rss_bytes": rec.get("rss_bytes"),
            "cpu_seconds": rec.get("cpu_seconds"),  # the fit's own CPU time (a busier host, or more work)
        },
    }


def load_run(
    path: str | os.PathLike[str], max_epoch_records: int | None = None, stats: ReadStats | None = None
) -> Run:
    """Read one trace file into a Run; raises TraceError for an unusable file.

    `max_epoch_records` bounds the whole epoch records kept (see the module docstring);
    `stats` (optional) collects what reading skipped, and reports bytes as they are read.
    """
    stats = stats if stats is not None else ReadStats()
    run: Run | None = None
    for rec in iter_records(path, stats):
        if run is None:
            run = Run(
                run_id=str(rec.get("run_id", Path(path).stem)),
                path=Path(path),
                stats=stats,
                max_epoch_records=max_epoch_records,
            )
        run.add(rec)
    assert run is not None  # iter_records raises on a file without records
    return run
