"""A run's headline facts, worded once for the text and the HTML report.

The trace read, how it ended (epochs, time, overhead, new tf.function traces after warm-up:
analysis/retrace_count.py), versions, host, GPUs and model (`rows`), and the findings per
severity (analysis/ledger.py): the same numbers `top`, the console and the daemon's status
show for the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from epochwatch.analysis.findings import from_record
from epochwatch.analysis.ledger import count_severities, counts_text
from epochwatch.analysis.units import fmt_bytes, fmt_duration, fmt_number, fmt_pct


def moment(f: Mapping[str, Any], fits: int | None = None, seen: bool = True) -> str:
    """When a finding's numbers are from, as Keras counts epochs (the trace's are 0-based):
    'epoch 20', or 'epoch 40 (first seen at epoch 20)' for an episode's update (`seen`); a
    finding on a loop's fits by its fit: 'fit 17 (first seen at fit 12)'; in a run of
    several `fits`, a finding on one fit's epochs names that fit too: 'fit 3, epoch 4'; ''
    without. The console's lines and the report's say the same moment."""
    ev = f.get("evidence") or {}
    span = ev.get("fits") if ev.get("unit") == "fit" or "slope_per_fit" in ev else None
    if isinstance(span, int) and not isinstance(span, bool) and span > 0:
        span = [span - 1]  # a count of fits (models_in_loop): the newest is fits - 1
    if isinstance(span, list) and span and isinstance(span[-1], int):
        first = ev.get("first_fit")
        said = (
            f" (first seen at fit {first + 1})"
            if seen and isinstance(first, int) and first != span[-1]
            else ""
        )
        return f"fit {span[-1] + 1}{said}"
    first, as_of = f.get("epoch"), f.get("as_of")
    at = as_of if isinstance(as_of, int) else first
    if not isinstance(at, int):
        return ""
    point = point_noun(ev)
    said = f" (first seen at {point} {first + 1})" if seen and isinstance(first, int) and first != at else ""
    fit = ev.get("fit")
    of = (
        f"fit {fit + 1}, "
        if fits and fits > 1 and isinstance(fit, int) and not isinstance(fit, bool) and point == "epoch"
        else ""
    )
    return f"{of}{point} {at + 1}{said}"


def point_noun(evidence: Mapping[str, Any]) -> str:
    """What a finding's numbers count: "window" (of inference calls, the table's "w" rows) or
    "epoch"."""
    return "window" if evidence.get("of_windows") else "epoch"


def rows(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) of the run's header, in the order shown."""
    fp = run.get("fingerprint") or {}
    return [
        ("trace", _trace(run)),
        ("ended", ended(run)),
        ("versions", _versions(fp)),
        ("host", _host(fp)),
        ("GPU", _gpus(fp)),
        ("model", _model(run.get("training") or {})),
    ]


def _versions(fp: Mapping[str, Any]) -> str:
    parts = [
        f"{name} {fp[name]}"
        for name in ("python", "tensorflow", "keras", "tf_keras", "keras_backend", "torch", "jax", "numpy")
        if fp.get(name)
    ]
    return " · ".join(parts) or "-"


def _host(fp: Mapping[str, Any]) -> str:
    parts = [str(fp.get("hostname", "?"))]
    if fp.get("cpu_count"):
        parts.append(f"{fp['cpu_count']} CPUs")
    if fp.get("memory_total_bytes"):
        mem = f"{fmt_bytes(fp['memory_total_bytes'])} memory"
        if fp.get("memory_limit_bytes"):
            mem += f" (limit {fmt_bytes(fp['memory_limit_bytes'])})"
        parts.append(mem)
    return " · ".join(parts)


def _gpus(fp: Mapping[str, Any]) -> str:
    gpus = fp.get("gpus") or []
    if not gpus:
        return "none seen"
    parts = []
    for g in gpus:
        if isinstance(g, Mapping):
            total = f" ({fmt_bytes(g['memory_total_bytes'])})" if g.get("memory_total_bytes") else ""
            parts.append(f"{g.get('index', '?')}: {g.get('name', '?')}{total}")
    text = ", ".join(parts)
    if fp.get("driver"):
        text += f"; driver {fp['driver']}"
    cuda = (fp.get("tf_build") or {}).get("cuda_version")
    if cuda:
        text += f"; TF built for CUDA {cuda}"
    return text


def _model(tr: Mapping[str, Any]) -> str:
    if not tr:
        return "-"
    text = " · ".join(_fit_parts(tr))
    if tr.get("fits", 1) > 1:
        text += f" · {tr['fits']} fit calls"
    last = tr.get("last_fit")
    if isinstance(last, Mapping) and last:
        text += "; the last: " + " · ".join(_fit_parts(last))
    return text


def _fit_parts(tr: Mapping[str, Any]) -> list[str]:
    """A fit's model, optimizer, loss, batch and plan, as far as `tr` says them."""
    parts = []
    if tr.get("model_class") or tr.get("model"):
        name = (
            f"{tr.get('model_class', '')} {tr.get('model', '')!r}".strip()
            if tr.get("model")
            else tr["model_class"]
        )
        parts.append(f"{name}{_params(tr, ': ')}")
    elif isinstance(tr.get("params"), int):
        parts.append(_params(tr, ""))
    if tr.get("optimizer"):
        lr = tr.get("learning_rate")
        parts.append(f"{tr['optimizer']}" + (f" lr {fmt_number(lr)}" if isinstance(lr, int | float) else ""))
    if tr.get("loss"):
        parts.append(f"loss {tr['loss']}")
    if tr.get("batch_size"):
        parts.append(f"batch {tr['batch_size']}")
    if tr.get("epochs_planned"):
        parts.append(f"{tr['epochs_planned']} epochs planned")
    return parts


def _params(tr: Mapping[str, Any], lead: str) -> str:
    """'2,300,000 params (65 trainable)': the trainable count where layers are frozen."""
    if not isinstance(tr.get("params"), int):
        return ""
    text = f"{lead}{tr['params']:,} params"
    trainable = tr.get("trainable_params")
    if isinstance(trainable, int) and trainable != tr["params"]:
        text += f" ({trainable:,} trainable)"
    return text


def _trace(run: Mapping[str, Any]) -> str:
    r = run.get("read", {})
    text = f"{run.get('path')} ({r.get('lines', 0)} lines, "
    if r.get("skipped"):
        text += f"{r['skipped']} skipped{', torn last line' if r.get('torn_tail') else ''})"
    else:
        text += "none skipped)"
    return text


def kind_cell(kind: str | None, cell: str) -> str:
    """An epoch table's first cell: a window of inference calls reads "w3" beside epochs' "3"."""
    return f"w{cell}" if kind == "window" else cell


def ended(run: Mapping[str, Any]) -> str:
    """'completed · 12 epochs · 3 min · epochwatch overhead 0.4% of epoch time · 57 retraces after warm-up'."""
    how = str(run.get("ended", "?"))
    if how == "raised" and run.get("exception"):
        how += f" {run['exception']}" + (f": {run['message']}" if run.get("message") else "")
    elif how == "abruptly" and run.get("stopped_after_fit"):
        how = (
            "without its run_end after its last fit completed (its process ended without Python's exit "
            "handlers: a multiprocessing child, os._exit(), a SIGTERM; or it is still running)"
        )
    elif how == "abruptly":
        how = "abruptly (no run_end: killed, or still running)"
    windows = run.get("windows")
    parts = [how, f"{run.get('epochs', 0)} epochs"]
    if isinstance(windows, int) and windows > 0:  # "5 epochs · 4 windows of calls"
        parts[1] = f"{run.get('epochs', 0) - windows} epochs" if run.get("epochs", 0) > windows else ""
        parts = [p for p in parts if p]
        parts.append(f"{windows} windows of calls")
    if isinstance(run.get("seconds"), int | float):
        parts.append(fmt_duration(run["seconds"]))
    if isinstance(run.get("overhead_share"), int | float):
        parts.append(f"epochwatch overhead {fmt_pct(run['overhead_share'])} of epoch time")
    retraces = run.get("retraces_after_warmup")
    if isinstance(retraces, int) and retraces > 0:
        what = run.get("retraces_of") if isinstance(run.get("retraces_of"), str) else "tf.function"
        parts.append(f"{retraces} new {what} traces after warm-up")  # a JAX run's are jitted functions
    return " · ".join(parts)


def findings(listed: Sequence[Mapping[str, Any]]) -> str:
    """'2: 1 warning, 1 info' for a list of report-JSON findings, '0' for none."""
    if not listed:
        return "0"
    return f"{len(listed)}: {counts_text(count_severities(from_record(f) for f in listed))}"
