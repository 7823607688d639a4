"""What the HTML report plots for one run, as plain figure dicts (drawn by plots.py).

This is the one place that reads a run's per-epoch columns for plotting: the epoch time
with its fitted trend, the loss, host and GPU memory with their limits and the projection
toward them, new traces per epoch and the watched directories; restores and findings are
marked where they happened. Every series is decimated to at most plots.MAX_POINTS points
(min/max per bucket), so a run of 100,000 epochs makes a report of the same size as one of
1,000. The result is JSON-ready and holds no live objects.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from epochwatch.analysis import trend
from epochwatch.analysis.files import Analyzed
from epochwatch.analysis.series import STEADY, EpochSeries, finite_number
from epochwatch.analysis.units import fmt_bytes, fmt_number, fmt_seconds
from epochwatch.report import marks
from epochwatch.report.plots import decimate

Figure = dict[str, Any]
# Theil-Sen is quadratic in the points: fit on at most this many, evenly spaced.
TREND_POINTS = 300
MAX_DIRS = 4
# A watched directory that moved less than this is "unchanged": no panel, one line.
UNCHANGED_SHARE = 0.01
UNCHANGED_BYTES = 64 * 1024
# A limit farther above the data than this is named in the legend instead of drawn.
LIMIT_IN_VIEW = 1.6


class _Axis:
    """The x of each held epoch: its epoch number when those only go up, else its index."""

    def __init__(self, series: EpochSeries) -> None:
        self.series = series
        self.idx = list(range(series.offset, series.count))
        epochs = [series.value("epoch", i) for i in self.idx]
        ordered = all(e == e for e in epochs) and all(b >= a for a, b in itertools.pairwise(epochs))
        self.by_epoch = ordered
        self.x: list[float] = epochs if ordered else [float(i) for i in self.idx]

    def column(self, name: str, key: str | None = None) -> list[float | None]:
        col = self.series.column(name, key)
        return [] if col is None else [finite_number(v) for v in col]

    def at_position(self, pos: int) -> float | None:
        """x of a point between epoch records: `pos` epochs had been recorded."""
        if not self.x:
            return None
        i = pos - self.series.offset
        if i <= 0:
            return self.x[0] - 0.5
        if i >= len(self.x):
            return self.x[-1] + 0.5
        return (self.x[i - 1] + self.x[i]) / 2

    def of_epoch(self, epoch: Any) -> float | None:
        """x of an epoch number, where x is the epoch number."""
        return float(epoch) if isinstance(epoch, int | float) and self.x and self.by_epoch else None


def _series(
    name: str, x: Sequence[float], y: Sequence[float | None], cls: str, **extra: Any
) -> dict[str, Any]:
    dx, dy = decimate(x, y)
    return {"name": name, "x": dx, "y": dy, "cls": cls, **extra}


def _present(y: Sequence[float | None]) -> list[float]:
    return [v for v in y if v is not None]


def _signed(unit: str, v: float) -> str:
    if v == 0:
        return "±0"
    fmt = {"bytes": fmt_bytes, "seconds": fmt_seconds}.get(unit, fmt_number)
    return ("+" if v > 0 else "-") + fmt(abs(v))


def theil_sen_line(x: Sequence[float], y: Sequence[float | None], unit: str) -> dict[str, Any] | None:
    """The Theil-Sen line through (x, y) as a figure line, fitted on at most TREND_POINTS."""
    pts = [(a, b) for a, b in zip(x, y, strict=False) if b is not None]
    if len(pts) < 3:
        return None
    if len(pts) > TREND_POINTS:
        step = len(pts) / TREND_POINTS
        pts = [pts[int(k * step)] for k in range(TREND_POINTS)] + [pts[-1]]
    xs = [p[0] for p in pts]
    fit = trend.theil_sen([p[1] for p in pts], xs)
    x0, x1 = xs[0], xs[-1]
    return {
        "x0": x0,
        "y0": fit.intercept + fit.slope * x0,
        "x1": x1,
        "y1": fit.intercept + fit.slope * x1,
        "cls": "trend",
        "label": f"Theil-Sen trend {_signed(unit, fit.slope)}/epoch",
        "slope": fit.slope,
    }


def _window_line(
    ev: Mapping[str, Any],
    unit: str,
    what: str,
    x: Sequence[float] = (),
    y: Sequence[float | None] = (),
) -> dict[str, Any] | None:
    """A fitted line over the finding's window (its evidence's `epochs`).

    Drawn through the plotted data: a Theil-Sen fit of (x, y) within the window. The
    detector's own `start`/`now` may come from another series (a lower envelope, the
    minimum within each epoch), which would put the line below the points it summarises;
    they are used only when the plot has too few points in the window.
    """
    epochs = ev.get("epochs")
    if not (isinstance(epochs, list) and len(epochs) == 2):
        return None
    if all(isinstance(e, int | float) for e in epochs):
        inside = [(a, b) for a, b in zip(x, y, strict=False) if epochs[0] <= a <= epochs[1]]
        fitted = theil_sen_line([a for a, _ in inside], [b for _, b in inside], unit)
        if fitted is not None:
            fitted["label"] = f"{what} trend {_signed(unit, fitted['slope'])}/epoch"
            return fitted
    if not all(isinstance(ev.get(k), int | float) for k in ("start", "now")):
        return None
    slope = ev.get("slope_per_epoch")
    label = f"{what} trend" + (f" {_signed(unit, slope)}/epoch" if isinstance(slope, int | float) else "")
    return {
        "x0": epochs[0],
        "y0": ev["start"],
        "x1": epochs[1],
        "y1": ev["now"],
        "cls": "trend",
        "label": label,
    }


def _finding(
    findings: Sequence[Mapping[str, Any]], kind: str, target: str | None = "*"
) -> Mapping[str, Any] | None:
    for f in findings:
        if f.get("kind") == kind and (target == "*" or f.get("target") == target):
            return f
    return None


def _projection(
    fig: Figure,
    ev: Mapping[str, Any],
    axis: _Axis,
    planned_last: float | None,
    limit: float | None,
    limit_label: str,
    y: Sequence[float | None] = (),
) -> None:
    """Extend a leak's fitted line toward its limit, and put the limit in view when it is near."""
    line = _window_line(ev, "bytes", "growth", axis.x, y)
    if line is None:
        return
    fig["lines"].append(line)
    slope = ev.get("slope_per_epoch")
    if not (isinstance(slope, int | float) and slope > 0) or not axis.x:
        return
    first, last = axis.x[0], axis.x[-1]
    span = max(1.0, last - first)
    horizon = max(planned_last or last, last + 0.25 * span)
    to_limit = ev.get("epochs_to_limit")
    x0, y0 = float(line["x1"]), float(line["y1"])
    if limit is not None and isinstance(to_limit, int | float) and x0 + to_limit <= last + span:
        x1 = x0 + float(to_limit)
        for hl in fig["hlines"]:
            hl["fit"] = True
    else:
        x1 = horizon
    label = "projection"
    if isinstance(to_limit, int | float):
        label += f": {limit_label} in ~{to_limit:.0f} epochs"
    fig["lines"].append(
        {"x0": x0, "y0": y0, "x1": x1, "y1": y0 + slope * (x1 - x0), "cls": "projection", "label": label}
    )
    fig["x_max"] = x1


def _limit(fig: Figure, value: float | None, name: str, data: Sequence[float]) -> None:
    if value is None or value <= 0:
        return
    label = f"{name} {fmt_bytes(value)}"
    near = bool(data) and value <= max(data) * LIMIT_IN_VIEW
    fig["hlines"].append({"y": value, "label": label, "cls": "limit", "fit": near})
    if not near:
        fig["notes"].append(f"{label}, off the scale")


def _new(fig_id: str, title: str, unit: str) -> Figure:
    lists = ("series", "lines", "hlines", "vlines", "above", "notes")
    return {"id": fig_id, "title": title, "unit": unit, **{name: [] for name in lists}}


def _latest(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


def time_figure(axis: _Axis, findings: Sequence[Mapping[str, Any]]) -> Figure | None:
    y = axis.column("seconds")
    if not _present(y):
        return None
    fig = _new("time", "Epoch time", "seconds")
    warm = [axis.series.warm[i - axis.series.offset] != STEADY for i in axis.idx]
    steady = [v if not w else None for v, w in zip(y, warm, strict=True)]
    steady_vals = _present(steady)
    fig["series"].append(_series("epoch time", axis.x, y, "s0"))
    if steady_vals:
        cap = max(steady_vals) * 1.15
        high = [
            (x, v) for x, v, w in zip(axis.x, y, warm, strict=True) if w and v is not None and v > 2 * cap
        ]
        if high:  # warm-up (compile, first traces) would flatten everything else: clip it
            fig["y_max"] = cap
            fig["above"] = [{"x": x, "y": v, "label": f"warm-up {fmt_seconds(v)}"} for x, v in high[:5]]
    f = _finding(findings, "slowdown", None)
    line = (
        _window_line(f.get("evidence") or {}, "seconds", "slowdown", axis.x, steady)
        if f and axis.by_epoch
        else None
    )
    if line is None:
        line = theil_sen_line(axis.x, steady, "seconds")
    if line is not None:
        fig["lines"].append(line)
    vals = _present(y)
    fig["caption"] = (
        f"{fmt_seconds(vals[0])} → {fmt_seconds(vals[-1])} (median {fmt_seconds(trend.median(vals))})"
    )
    return fig


def loss_figure(axis: _Axis) -> Figure | None:
    loss, val = axis.column("loss"), axis.column("val_loss")
    if not _present(loss) and not _present(val):
        return None
    fig = _new("loss", "Loss", "number")
    for name, y, cls in (("loss", loss, "s0"), ("val_loss", val, "s1")):
        if _present(y):
            fig["series"].append(_series(name, axis.x, y, cls))
    vals = _present(loss) + _present(val)
    if min(vals) > 0 and max(vals) / min(vals) > 50:
        fig["log"] = True
    last = _latest(loss)
    said = [f"last loss {fmt_number(last)}"] if last is not None else []
    if _present(val):
        said.append(f"val_loss {fmt_number(_latest(val) or math.nan)}")
    fig["caption"] = "; ".join(said)
    return fig


def host_memory_figure(
    axis: _Axis, findings: Sequence[Mapping[str, Any]], planned_last: float | None
) -> Figure | None:
    rss = axis.column("rss")
    if not _present(rss):
        return None
    fig = _new("host_memory", "Host memory (RSS)", "bytes")
    fig["series"].append(_series("RSS at epoch end", axis.x, rss, "s0"))
    peak = axis.column("rss_peak")
    if _present(peak) and any(p != r for p, r in zip(peak, rss, strict=True) if p is not None):
        fig["series"].append(_series("peak in epoch (daemon)", axis.x, peak, "s2"))
    swap = axis.column("swap")
    if any(v for v in swap if v):
        fig["series"].append(_series("swapped out", axis.x, swap, "s3"))
    limit = _latest(axis.column("mem_limit"))
    name = "cgroup limit"
    if limit is None:
        limit, name = _latest(axis.column("sys_total")), "physical memory"
    data = _present(rss) + _present(peak)
    _limit(fig, limit, name, data)
    f = _finding(findings, "host_memory_growth")
    if f and axis.by_epoch:
        _projection(fig, f.get("evidence") or {}, axis, planned_last, limit, name, rss)
    vals = _present(rss)
    fig["caption"] = f"{fmt_bytes(vals[0])} → {fmt_bytes(vals[-1])} (max {fmt_bytes(max(data))})"
    return fig


def gpu_memory_figure(
    axis: _Axis, findings: Sequence[Mapping[str, Any]], planned_last: float | None
) -> Figure | None:
    series = axis.series
    fig = _new("gpu_memory", "GPU memory", "bytes")
    data: list[float] = []
    totals: dict[str, float] = {}
    for n, key in enumerate(series.keys("tf_current")):
        y = axis.column("tf_current", key)
        if _present(y):
            fig["series"].append(_series(f"{key} TF allocator", axis.x, y, f"s{n % 4}"))
            data += _present(y)
    for n, key in enumerate(series.keys("gpu_proc")):
        y = axis.column("gpu_proc", key)
        if _present(y):
            name = series.gpu_names.get(key)
            fig["series"].append(
                _series(f"GPU:{key} process" + (f" ({name})" if name else ""), axis.x, y, f"s{(n + 1) % 4}")
            )
            data += _present(y)
        total = _latest(axis.column("gpu_total", key))
        if total is not None:
            totals[key] = total
    if not fig["series"]:
        return None
    for key, total in sorted(totals.items()):
        _limit(fig, total, f"GPU:{key} total", data)
    f = _finding(findings, "gpu_memory_growth")
    if f and axis.by_epoch:
        target = str(f.get("target") or "")
        index = target.split(":", 1)[1] if ":" in target else ""
        plotted = axis.column("tf_current", index) if index in series.keys("tf_current") else []
        if not _present(plotted):
            plotted = axis.column("gpu_proc", index)
        _projection(
            fig, f.get("evidence") or {}, axis, planned_last, totals.get(index), f"{target} total", plotted
        )
    fig["caption"] = f"max {fmt_bytes(max(data))}" + (
        f" of {fmt_bytes(max(totals.values()))}" if totals else ""
    )
    return fig


def retrace_figure(axis: _Axis) -> Figure | None:
    y = axis.column("retrace_new")
    if not _present(y):
        return None
    fig = _new("retraces", "New tf.function traces per epoch", "count")
    style = "bars" if len(axis.x) <= 400 else "line"
    fig["series"].append(_series("new traces", axis.x, y, "s0", style=style))
    warm = [axis.series.warm[i - axis.series.offset] for i in axis.idx]
    later = sum(v for v, w in zip(y, warm, strict=True) if v and w == STEADY)
    fig["caption"] = f"{int(sum(_present(y)))} in all, {int(later)} after warm-up"
    fig["y_min"] = 0
    return fig


def unchanged(sizes: Sequence[float], files: Sequence[float]) -> bool:
    """A directory whose size moved less than UNCHANGED_SHARE of itself (and under
    UNCHANGED_BYTES) and whose file count did not move: its panel would say nothing."""
    span = max(sizes) - min(sizes)
    same_files = not files or max(files) == min(files)
    return same_files and span <= max(UNCHANGED_BYTES, UNCHANGED_SHARE * max(sizes))


def dir_figures(axis: _Axis, findings: Sequence[Mapping[str, Any]], hidden: list[str]) -> list[Figure]:
    """Panels of the watched directories that changed (the others' paths go to `hidden`)."""
    series = axis.series
    flagged = {str(f.get("target")) for f in findings if f.get("kind") == "disk_growth"}
    ranked: list[tuple[int, float, str]] = []
    for key in series.keys("dir_bytes"):
        vals = _present(axis.column("dir_bytes", key))
        if not vals:
            continue
        if key not in flagged and unchanged(vals, _present(axis.column("dir_files", key))):
            hidden.append(key)
            continue
        growth = (vals[-1] - vals[0]) / max(vals[0], 1.0)
        ranked.append((0 if key in flagged else 1, -growth, key))
    out: list[Figure] = []
    for _, _, key in sorted(ranked)[:MAX_DIRS]:
        role = series.dir_roles.get(key, "watched")
        fig = _new(f"dirs:{key}", f"{role}: {key}", "bytes")
        y = axis.column("dir_bytes", key)
        fig["series"].append(_series("bytes", axis.x, y, "s0"))
        files = _present(axis.column("dir_files", key))
        vals = _present(y)
        fig["caption"] = (
            f"{fmt_bytes(vals[0])} → {fmt_bytes(vals[-1])} ({_signed('bytes', vals[-1] - vals[0])})"
        )
        if files:
            fig["caption"] += f"; {int(files[0])} → {int(files[-1])} files"
        free = _latest(axis.column("dir_free", key))
        if free is not None:
            fig["notes"].append(f"{fmt_bytes(free)} free on its file system")
        f = _finding(findings, "disk_growth", key)
        if f and axis.by_epoch:
            ev = f.get("evidence") or {}
            if ev.get("series") != "files":
                line = _window_line(ev, "bytes", "growth", axis.x, y)
                if line is not None:
                    fig["lines"].append(line)
        out.append(fig)
    return out


def build(an: Analyzed, findings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The run's figures, and the watched directories left out as unchanged:
    `{"figures": [...], "unchanged_dirs": [{"path", "role"}, ...]}`."""
    series = an.run.series
    axis = _Axis(series)
    if not axis.x:
        return {"figures": [], "unchanged_dirs": []}
    planned = _planned_last(an, axis)
    hidden: list[str] = []
    figs = [
        time_figure(axis, findings),
        loss_figure(axis),
        host_memory_figure(axis, findings, planned),
        gpu_memory_figure(axis, findings, planned),
        retrace_figure(axis),
        *dir_figures(axis, findings, hidden),
    ]
    restores = marks.restore_marks(an.run, axis)
    by_figure = marks.finding_marks(findings, axis)
    out = []
    for fig in figs:
        if fig is None:
            continue
        fig["vlines"] = [*restores, *by_figure.get(fig["id"], [])]
        if not axis.by_epoch:  # epoch numbers restart (several fits or loops): plot in record order
            fig["x_name"] = "epoch record"
        out.append(fig)
    unchanged_dirs = [{"path": key, "role": series.dir_roles.get(key, "watched")} for key in hidden]
    return {"figures": out, "unchanged_dirs": unchanged_dirs}


def _planned_last(an: Analyzed, axis: _Axis) -> float | None:
    """The last epoch number the newest fit planned (Keras `epochs` counts from 0)."""
    fit: Any = an.run.fits[-1] if an.run.fits else (an.run.start or {}).get("training")
    epochs = fit.get("epochs") if isinstance(fit, Mapping) else None
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0 and axis.by_epoch:
        return float(epochs - 1)
    return None
