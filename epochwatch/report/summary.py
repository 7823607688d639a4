"""One run as a plain dict: what `report` prints (text) and emits (json).

The dict is the JSON contract's run entry: `run_id`, `findings` (kind, severity,
title, evidence, hint, target, epoch), plus the fingerprint summary, how the run ended,
what reading skipped, and the epoch table.
"""

from __future__ import annotations

import math
from typing import Any

from epochwatch.analysis import frameworks
from epochwatch.analysis.explained import attach_where
from epochwatch.analysis.files import Analyzed
from epochwatch.analysis.ledger import count_severities
from epochwatch.analysis.series import SIBLINGS, EpochSeries
from epochwatch.report.sparkline import sparkline

# Epoch table columns: (name, unit).
COLUMNS = (
    ("epoch", "epoch"),
    ("time", "seconds"),
    ("loss", "number"),
    ("rss", "bytes"),
    ("gpu_mem", "bytes"),
    ("retraces", "count"),
    ("watched", "bytes"),
)
TABLE_ROWS_JSON = 10_000


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _dict(d: Any) -> dict[str, Any]:
    return d if isinstance(d, dict) else {}


def fingerprint(start: dict[str, Any] | None) -> dict[str, Any]:
    env = _dict(_get(start, "env"))
    packages = _dict(env.get("packages"))
    out: dict[str, Any] = {
        "python": env.get("python"),
        **{name: packages.get(name) for name in ("tensorflow", "keras", "tf_keras", "numpy", "torch", "jax")},
        **{k: env.get(k) for k in ("keras_backend", "hostname", "platform", "cpu_count")},
        **{k: env.get(k) for k in ("memory_total_bytes", "memory_limit_bytes")},
        "gpus": env.get("gpus") if isinstance(env.get("gpus"), list) else [],
        "driver": env.get("driver"),
        "tf_build": _dict(env.get("tf_build")),
        "script": env.get("script"),
        "distributed": _dict(env.get("distributed")),
        "mode": _get(start, "mode"),
        "epochwatch": _get(start, "epochwatch"),
    }
    return {k: v for k, v in out.items() if v not in (None, {}, [])}


# What a later fit may change that the header says: a second stage's optimizer and plan
# (the model's name is not among them: a loop of new models names each anew).
_LAST_FIT = ("model_class", "params", "trainable_params", "optimizer", "learning_rate", "loss", "batch_size")


def _fit_facts(fit: dict[str, Any]) -> dict[str, Any]:
    model = _dict(fit.get("model"))
    optimizer = _dict(fit.get("optimizer"))
    config = _dict(optimizer.get("config"))
    out: dict[str, Any] = {
        # A custom loop's fit is named after its optimizer (the model is not known): no model name.
        "model": model.get("name") if fit.get("source") != "optimizer" else None,
        "model_class": model.get("class"),
        "params": model.get("params"),
        "trainable_params": model.get("trainable_params"),
        "optimizer": _optimizer_name(fit, optimizer),
        "learning_rate": config.get("learning_rate"),
        "loss": fit.get("loss"),
        "batch_size": fit.get("batch_size"),
        "epochs_planned": fit.get("epochs"),
    }
    return {k: v for k, v in out.items() if v is not None}


def _optimizer_name(fit: dict[str, Any], optimizer: dict[str, Any]) -> Any:
    """The optimizer's class; a model that trains with its own optimizer attributes (a GAN's
    `d_optimizer`, `g_optimizer`, compile() leaving Keras's default unused) by those."""
    named = _dict(fit.get("optimizers"))
    if optimizer.get("attribute") and named:
        return ", ".join(f"{name} {cls}" for name, cls in list(named.items())[:4])
    return optimizer.get("class")


def training(an: Analyzed) -> dict[str, Any]:
    """The first fit's model, optimizer and plan; with `last_fit`, what the last fit changed
    of them (a fine-tuning stage's optimizer, rate and plan)."""
    run = an.run
    fit = _dict(_get(run.start, "training") or (run.fits[0] if run.fits else None))
    if not fit:
        return {}
    out = _fit_facts(fit)
    if run.fits:
        out["fits"] = len(run.fits)
    if run.fits and _dict(run.fits[-1]).get("fit") != fit.get("fit"):
        last = _fit_facts(_dict(run.fits[-1]))
        changed = {k: last[k] for k in (*_LAST_FIT, "epochs_planned") if k in last and last[k] != out.get(k)}
        if changed.keys() & set(_LAST_FIT):  # another plan alone is a loop's next round, not a new stage
            # ... said with what names them: the optimizer of a rate, the model of its sizes.
            context = {
                "learning_rate": ("optimizer",),
                "params": ("model_class",),
                "trainable_params": ("model_class", "params"),
            }
            for key, owners in context.items():
                for owner in owners:
                    if key in changed and owner in last:
                        changed.setdefault(owner, last[owner])
            out["last_fit"] = changed
    return out


def _sum_keyed(series: EpochSeries, family: str, i: int) -> float:
    # Sibling directories' sum (`<parent>/*`, series.SIBLINGS) is theirs again: not twice.
    vals = [series.value(family, i, key) for key in series.keys(family) if not key.endswith(SIBLINGS)]
    vals = [v for v in vals if v == v]
    return sum(vals) if vals else math.nan


def table_row(series: EpochSeries, i: int) -> list[float]:
    gpu = _sum_keyed(series, "tf_current", i)
    if gpu != gpu:
        gpu = _sum_keyed(series, "gpu_proc", i)
    epoch = series.value("epoch", i)
    return [
        epoch if epoch == epoch else float(i),
        series.value("seconds", i),
        series.value("loss", i),
        series.value("rss", i),
        gpu,
        series.value("retrace_new", i),
        _sum_keyed(series, "dir_bytes", i),
    ]


def table_indexes(count: int, limit: int, edge: int = 5) -> tuple[list[int], int]:
    """Which epochs a table shows: all up to `limit`, else the first and last `edge` and
    evenly spaced ones between; returns (indexes, stride) with stride 1 for all."""
    if count <= limit:
        return list(range(count)), 1
    middle = max(1, limit - 2 * edge)
    stride = max(1, math.ceil((count - 2 * edge) / middle))
    idx = list(range(edge)) + list(range(edge, count - edge, stride)) + list(range(count - edge, count))
    return sorted(set(idx)), stride


def _json_number(v: float) -> float | int | None:
    if v != v or math.isinf(v):
        return None
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def summarize(an: Analyzed, table_limit: int = TABLE_ROWS_JSON) -> dict[str, Any]:
    run = an.run
    series = run.series
    end = run.end or {}
    stats = run.stats
    findings = [{**f.to_dict(), "source": "analysis"} for f in an.findings]
    findings += [{**f.to_dict(), "source": "trace"} for f in an.recorded]
    attach_where(findings, run.explains)
    frameworks.after_look_inside(findings)
    idx, stride = table_indexes(series.count, table_limit) if series.offset == 0 else ([], 1)
    rows = [[_json_number(v) for v in table_row(series, i)] for i in idx]
    windows = [i for i in range(series.offset, series.count) if _is_window(series, i)]
    seconds = [v for v in series.cols["seconds"] if v == v]
    overhead = [v for v in series.cols["overhead"] if v == v]
    out: dict[str, Any] = {
        "run_id": run.run_id,
        "path": str(an.path),
        "ended": run.ended,
        "stopped_after_fit": _stopped_after_fit(run) or None,
        "exception": end.get("exception"),
        "message": end.get("message"),
        "epochs": series.count,
        # Of them, windows of inference calls (after a fit, or a run that only served).
        "windows": len(windows) or None,
        "seconds": end.get("seconds"),
        "epoch_seconds_total": sum(seconds),
        "overhead_share": (sum(overhead) / sum(seconds))
        if seconds and sum(seconds) > 0 and overhead
        else None,
        "read": {
            "lines": stats.lines,
            "records": stats.records,
            "skipped": stats.skipped,
            "torn_tail": stats.torn_tail,
            "problems": list(stats.first_problems),
            "bytes": stats.bytes_read,
        },
        "fingerprint": fingerprint(run.start),
        "training": training(an),
        "findings": findings,
        "finding_counts": count_severities([*an.findings, *an.recorded]),
        "retraces_after_warmup": run.retraces.after_warmup,
        "retraces_of": frameworks.COMPILED[frameworks.framework(run.start)],  # what traced: tf.function, ...
        "epoch_table": {
            "columns": [name for name, _ in COLUMNS],
            "units": [unit for _, unit in COLUMNS],
            "rows": rows,
            "stride": stride,
            "decimated": stride > 1,
        },
    }
    if windows:  # per row: "window" for a window of inference calls, else "epoch"
        out["epoch_table"]["kinds"] = ["window" if _is_window(series, i) else "epoch" for i in idx]
    out["trends"] = trends(series)
    if run.notices:
        out["notices"] = [{"part": n.get("part"), "message": n.get("message")} for n in run.notices[:20]]
    return {k: v for k, v in out.items() if v is not None}


def _is_window(series: EpochSeries, i: int) -> bool:
    calls = series.value("calls", i)
    return calls == calls


def trends(series: EpochSeries, width: int = 40) -> dict[str, dict[str, Any]]:
    """Per table column over every epoch held: first, last, min, max and a sparkline."""
    n = series.count - series.offset
    if n == 0:
        return {}
    step = max(1, n // (width * 8))  # enough points for the sparkline's buckets
    idx = range(series.offset, series.count, step)
    rows = [table_row(series, i) for i in idx]
    out: dict[str, dict[str, Any]] = {}
    for c, (name, _unit) in enumerate(COLUMNS):
        if name == "epoch":
            continue
        col = [r[c] for r in rows]
        present = [v for v in col if v == v]
        if not present:
            continue
        out[name] = {
            "first": _json_number(present[0]),
            "last": _json_number(present[-1]),
            "min": _json_number(min(present)),
            "max": _json_number(max(present)),
            "sparkline": sparkline(col, width),
        }
    return out


def _stopped_after_fit(run: Any) -> bool:
    """Whether a run with no run_end had ended its last fit, with no epoch after it: a
    process stopped from outside once its work was done (a multiprocessing Pool's
    terminate() sends its workers SIGTERM after each trial's fit), not one killed mid-fit."""
    if run.ended != "abruptly" or not run.fits or not run.fit_ends:
        return False
    last = run.fit_ends[-1]
    return (
        last.get("fit") == run.fits[-1].get("fit")
        and last.get("ended") == "completed"
        and run.fit_end_positions[-1] >= run.series.count
    )
