"""RunAtEpoch: a run as it stood after a given epoch, which is what every detector judges.

(Not to be confused with the daemon's metrics snapshot of a live session: that one holds
a few numbers for Prometheus; this one is the whole run, cut at an epoch.)

Offline, the analysis replays a finished run one epoch at a time through views (so a
report says what the online analyzer said, and when); online, the view is simply the
run so far. Detectors read trailing windows of the per-epoch series through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from epochwatch.analysis import trend
from epochwatch.analysis.run import Run, model_int
from epochwatch.analysis.series import FIRST, SETTLING, EpochSeries, finite_number

if TYPE_CHECKING:
    from epochwatch.analysis.findings import Finding
    from epochwatch.analysis.restore.parents import ParentCache


@dataclass(frozen=True)
class Window:
    """Trailing values of one series (warm-up epochs and absent values left out)."""

    values: list[float]
    indexes: list[int]  # absolute epoch indexes, aligned with values

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class RunAtEpoch:
    run: Run
    end: int = -1  # epochs visible: indexes < end; -1 means all
    done: Callable[[str, str | None], bool] = field(default=lambda kind, target: False)
    # Parent runs of this run's restores, by trace path: owned by whoever runs the analysis
    # (the online analyzer, report/check); None: read for each evaluation.
    parents: ParentCache | None = None
    # What the engine reported already, also for episode detectors (whose `done` is always
    # False, so that they keep judging their findings).
    reported: Callable[[str, str | None], bool] = field(default=lambda kind, target: False)
    # ... and each such finding as last reported (an episode's newest update), or None: an
    # episode detector may reuse costly evidence when no update can come of this evaluation.
    last_reported: Callable[[str, str | None], Finding | None] = field(default=lambda kind, target: None)
    # What one point of the series is: "epoch", or "interval" (a stretch of steps inside an
    # epoch: the run's interval series, see Run.interval_view); epoch_number still gives
    # the epoch each point belongs to.
    unit: str = "epoch"
    # The run has ended and this is its verdict: an episode is updated on less growth then
    # (findings.grew_since), so what an episode detector reuses must be judged the same way.
    final: bool = False

    def __post_init__(self) -> None:
        if self.end < 0 or self.end > self.run.series.count:
            self.end = self.run.series.count

    @property
    def series(self) -> EpochSeries:
        return self.run.series

    @property
    def last(self) -> int:
        """Absolute index of the newest visible epoch (-1: none)."""
        return self.end - 1

    def epoch_records(self) -> list[dict[str, Any]]:
        """The whole epoch records the view sees: those the run keeps (the newest, online)
        up to its end; a replay holds the epochs after it too. An interval or fit view: the
        run's, as they stand."""
        if self.unit != "epoch":
            return list(self.run.epochs)
        return self.run.epochs[: max(0, self.end - self.run.epochs_dropped)]

    def fits_of_one_model(
        self, keep: Callable[[dict[str, Any]], bool] = lambda _fit: True
    ) -> list[dict[str, Any]]:
        """The newest fit_start records in a row that train one model (the same
        `model.serial`) and that `keep` keeps, of the fits whose epochs the view has seen."""
        seen = {rec.get("fit") for rec in self.epoch_records()}
        row: list[dict[str, Any]] = []
        for fit in reversed([f for f in self.run.fits if f.get("fit") in seen]):
            serial = model_int(fit, "serial")
            if serial is None or not keep(fit) or (row and serial != model_int(row[0], "serial")):
                break
            row.insert(0, fit)
        return row

    def fit_metrics(self, name: str, fits: Sequence[Any]) -> list[tuple[Any, float]]:
        """(fit, value) of metric `name` in each epoch record the view sees of `fits`, in
        order, where the record holds a finite one: a loop of fits judged by its losses."""
        out: list[tuple[Any, float]] = []
        for rec in self.epoch_records():
            metrics = rec.get("metrics")
            value = finite_number(metrics.get(name)) if isinstance(metrics, dict) else None
            if value is not None and rec.get("fit") in fits:
                out.append((rec.get("fit"), value))
        return out

    def epoch_number(self, index: int) -> int:
        """The epoch number the trace gave the epoch at `index` (its index when it gave none)."""
        v = self.series.value("epoch", index)
        return int(v) if v == v else index

    def named(self, index: int) -> str:
        """The point at `index` as a title names it, counted from 1 as Keras counts: "epoch 5",
        or "window 3" for a window of inference calls (the report's row "w3")."""
        calls = self.series.value("calls", index) if self.unit == "epoch" else math.nan
        return f"{'window' if calls == calls else 'epoch'} {self.epoch_number(index) + 1}"

    def value(self, name: str, index: int | None = None, key: str | None = None) -> float:
        return self.series.value(name, self.last if index is None else index, key)

    def latest(self, name: str, key: str | None = None, back: int = 8) -> float:
        """The newest present value of a series within the last `back` epochs (NaN: none)."""
        for i in range(self.last, max(self.series.offset, self.end - back) - 1, -1):
            v = self.series.value(name, i, key)
            if v == v:
                return v
        return math.nan

    def window(self, name: str, key: str | None = None, size: int = 60, envelope: int = 1) -> Window:
        """The trailing `size` non-warm-up values of a series, optionally as a lower envelope.

        With `envelope` k > 1 each value is the minimum of itself and the k - 1 values
        before it (the floor under a sawtooth), computed before the window is cut.
        """
        col = self.series.column(name, key)
        if col is None:
            return Window([], [])
        offset = self.series.offset
        want = size + max(0, envelope - 1)
        warm = self.series.warm
        stop = self.end - offset
        first = self.first - offset  # never before the newest epoch's fit
        span = want + 8
        while True:  # slices in C, then filter; widen only when warm-up or gaps ate the window
            lo = max(first, stop - span)
            chunk = col[lo:stop].tolist()
            total = sum(chunk)
            if total == total and not any(warm[lo:stop]):  # no gaps, no warm-up: no filtering
                values, indexes = chunk, list(range(lo + offset, stop + offset))
            else:
                values, indexes = [], []
                for i, v, w in zip(range(lo, stop), chunk, warm[lo:stop], strict=True):
                    if v == v and not w:
                        values.append(v)
                        indexes.append(i + offset)
            if len(values) >= want or lo == first:
                break
            span *= 4
        if len(values) > want:
            values, indexes = values[-want:], indexes[-want:]
        if envelope > 1:
            # Only points with a full envelope behind them: a partial one at the start of a
            # run would read as a flat stretch followed by growth.
            values = trend.running_min(values, envelope)[envelope - 1 :]
            indexes = indexes[envelope - 1 :]
            if len(values) > size:
                values, indexes = values[-size:], indexes[-size:]
        return Window(values, indexes)

    def early(self, name: str, key: str | None = None, span: int = 12) -> Window | None:
        """All usable values of a series while the run has at most `span` of them (a short
        run, or one still young), else None: the window the blatant-growth rule judges."""
        w = self.window(name, key, size=span + 1)
        return w if len(w) <= span else None

    def head(self, name: str, size: int = 8, settling: bool = False) -> list[float]:
        """The first non-warm-up values of a series in the newest epoch's fit: its baseline.
        settling: from the fit's second epoch on (its first, compiling, one left out), where
        a leak that starts with the fit is not to be hidden in the settling epochs."""
        col = self.series.column(name)
        if col is None:
            return []
        out: list[float] = []
        offset, warm = self.series.offset, self.series.warm
        skip = FIRST if settling else SETTLING
        for i in range(self.first - offset, self.end - offset):
            v = col[i]
            if v == v and warm[i] < skip:
                out.append(v)
                if len(out) >= size:
                    break
        return out

    @property
    def first(self) -> int:
        """Absolute index of the first epoch of the newest epoch's fit: every window and
        baseline starts there, so epochs of two fits are never one series."""
        if self.end <= 0:
            return self.series.offset
        return max(self.series.offset, self.series.segment_start(self.last))

    # -- what the run says about itself ------------------------------------------------------

    @property
    def start(self) -> dict[str, Any]:
        return self.run.start or {}

    @property
    def training(self) -> dict[str, Any]:
        training = self.start.get("training")
        if isinstance(training, dict):
            return training
        return self.run.fits[0] if self.run.fits else {}

    def fit_start(self, number: Any) -> dict[str, Any] | None:
        """The `fit_start` of fit `number` (the newest of that number), if the run keeps it."""
        return next((f for f in reversed(self.run.fits) if f.get("fit") == number), None)

    @property
    def planned_epochs(self) -> int | None:
        """Epochs the newest fit plans to run in total, when a Keras fit said so; none for
        the windows of inference calls after it (train, then serve: the plan was the fit's)."""
        if self.noun == "window":
            return None
        fit = self.run.fits[-1] if self.run.fits else self.training
        epochs = fit.get("epochs") if isinstance(fit, dict) else None
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs <= 0:
            return None
        if self._stopped_early(fit):
            return None  # EarlyStopping ended it: the plan (epochs=1000, say) is no horizon now
        return epochs

    def _stopped_early(self, fit: dict[str, Any]) -> bool:
        """Whether `fit` ended, by this view's moment, before its planned epochs."""
        run = self.run
        for end, position in zip(run.fit_ends, run.fit_end_positions, strict=False):
            # A fit_end comes after its fit's last epoch: seen from the next epoch on, and
            # by the run's verdict (`final`), as online, where it arrives after that epoch.
            if end.get("fit") == fit.get("fit") and (
                position < self.end or (self.final and position <= self.end)
            ):
                done = end.get("epochs_completed")
                return isinstance(done, int) and done < int(fit.get("epochs") or 0)
        return False

    @property
    def noun(self) -> str:
        """What a title calls one point: "fit", "window" (of inference calls: an inference
        run's epochs, or those after its fit), else "epoch" (intervals project in epochs)."""
        if self.unit == "fit":
            return "fit"
        calls = self.series.value("calls", self.last) if self.unit == "epoch" else math.nan
        return "window" if calls == calls else "epoch"

    def per(self) -> str:
        """What a slope is per, for titles: "per epoch", "per fit", "per window (50 calls)"
        or "per interval (57 steps)"."""
        if self.noun == "window":
            return f"per window ({self.series.value('calls', self.last):.0f} calls)"
        if self.unit in ("epoch", "fit"):
            return f"per {self.unit}"
        w = self.window("steps", size=8)
        steps = trend.median(w.values) if w.values else math.nan
        return (
            f"per interval ({steps:.0f} step{'' if round(steps) == 1 else 's'})"
            if steps == steps
            else "per interval"
        )

    def said(self, slope: float, per_epoch: float | None = None) -> tuple[float, str]:
        """A slope as a title says it: per point (`per`), but per epoch on intervals where
        epochs have ended (the unit the user saw, and the report's: "per interval (24
        steps)" live and "per epoch" in the report read as two numbers) or where intervals
        are sparser than the epochs (short epochs: an interval every few epochs). Inside
        the first long epochs an interval is the unit there is. `per_epoch`: the slope
        per epoch where known (growth_evidence's, slope_per_epoch)."""
        ratio = self.points_per_epoch() if self.unit == "interval" else math.nan
        if ratio == ratio and (ratio < 1 or self.epoch_number(self.last) >= 2):
            return (
                per_epoch if per_epoch is not None else slope * ratio,
                "per epoch (judged on sub-epoch intervals)",
            )
        return slope, self.per()

    def slope_per_epoch(self, slope: float, window: Window) -> float | None:
        """A slope judged on `window`'s intervals, per epoch: against where each interval
        ended in its epochs (its epoch and the share of the epoch's steps done), not the
        slope per interval times intervals per epoch. Intervals are timed, so they come
        unevenly (one an epoch, then three): a slope per interval drawn over the index
        read 20 MiB an epoch where RSS grew 27. None where the steps are not known."""
        if self.unit != "interval":
            return slope if self.unit == "epoch" else None
        positions = self._epoch_positions(window.indexes)
        if positions is None or positions[-1] - positions[0] < 1:
            ratio = self.points_per_epoch()
            return slope * ratio if ratio == ratio else None
        return trend.theil_sen(window.values, positions).slope

    def _epoch_positions(self, indexes: Sequence[int]) -> list[float] | None:
        """Where each interval ended, in epochs (one fit's, in order), or None."""
        per = self._steps_per_epoch()
        if not per or len(indexes) < 2:
            return None
        out: list[float] = []
        for i in indexes:
            step = self.series.value("step", i)
            where = self.epoch_number(i) + min(step, per) / per
            if step != step or (out and where < out[-1]):
                return None  # no step said, or a new fit's epochs counted from 0 again
            out.append(where)
        return out

    def _steps_per_epoch(self) -> float | None:
        """The planned steps per epoch of the fit this point belongs to (not the run's last:
        a replay holds later fits too); for a loop that plans nothing (a custom loop), the
        steps its recent epoch records counted, of the epochs before this point's."""
        index = self.series.value("fit", self.last)
        if index == index:  # the point names its fit
            fit = next((f for f in reversed(self.run.fits) if f.get("fit") == index), {})
        else:
            fit = self.run.fits[-1] if self.run.fits else {}
        planned = fit.get("steps_per_epoch") if isinstance(fit, dict) else None
        if isinstance(planned, int | float) and planned > 0:
            return float(planned)
        now = self.epoch_number(self.last)
        steps: list[float] = []
        for r in reversed(self.run.epochs):
            counted, epoch = r.get("steps"), r.get("epoch")
            if isinstance(epoch, int) and epoch < now and isinstance(counted, int | float) and counted > 0:
                steps.append(float(counted))
                if len(steps) == 8:
                    break
        return trend.median(steps) if steps else None

    def points_per_epoch(self) -> float:
        """Points of this view's series per epoch: 1 for epochs; for intervals, the fit's
        steps per epoch over the steps per interval (NaN when unknown), and at most as many
        as the recent intervals show: on short epochs the interval clock fires only every
        few epochs (8 intervals over 17 epochs are 0.4 a epoch, not 47 / 18 steps = 2.6)."""
        if self.unit == "epoch":
            return 1.0
        if self.unit == "fit":
            return math.nan
        planned = self._steps_per_epoch()
        w = self.window("steps", size=16)
        if not (planned and w.values):
            return math.nan
        ratio = float(planned) / max(1.0, trend.median(w.values[-8:]))
        span = self.epoch_number(w.indexes[-1]) - self.epoch_number(w.indexes[0])
        return min(ratio, (len(w.indexes) - 1) / span) if span >= 2 else ratio

    def point_seconds(self) -> float:
        """Typical wall time per point of this view's series (an epoch, an interval, a fit)."""
        w = self.window("seconds", size=10)
        return trend.median(w.values) if w.values else math.nan

    def epoch_seconds(self) -> float:
        """Typical seconds an epoch takes, its validation and saves included where the epochs
        say them. A sub-epoch interval's own seconds leave out what runs between intervals:
        the checkpoint saves that grow a disk (keras_h5_ckpt_tb_histograms: "full in about
        2584 epochs (9 min)" where 2584 epochs take 20)."""
        if self.unit == "epoch":
            return self.point_seconds()
        series = self.run.epoch_series
        if self.unit != "interval" or series is None:
            return math.nan
        positions = self.run.interval_positions
        end = positions[self.last] if self.last < len(positions) else series.count
        values = [series.value("seconds", i) for i in range(max(series.offset, end - 10), end)]
        values = [v for v in values if v == v]
        return trend.median(values) if values else math.nan

    def fit_number(self, index: int) -> int | None:
        """On the fit series (unit "fit"): the fit index of point `index` (from 0)."""
        ends, at = self.run.fit_ends, index - self.run.fit_ends_dropped
        fit = ends[at].get("fit") if 0 <= at < len(ends) else None
        return fit if isinstance(fit, int) and not isinstance(fit, bool) else None

    def epochs_left(self) -> int | None:
        planned = self.planned_epochs
        if planned is None:
            return None
        done = self.epoch_number(self.last) + 1
        return max(0, planned - done)


def window_epochs(view: RunAtEpoch, indexes: Sequence[int]) -> list[int]:
    """First and last epoch numbers of a window, for evidence."""
    if not indexes:
        return []
    return [view.epoch_number(indexes[0]), view.epoch_number(indexes[-1])]


def window_fits(view: RunAtEpoch, indexes: Sequence[int]) -> list[int | None]:
    """First and last fit indexes (from 0) of a window of the fit series, for evidence."""
    if not indexes or view.unit != "fit":
        return []
    return [view.fit_number(indexes[0]), view.fit_number(indexes[-1])]
