"""cleanup_in_loop: the script's own `gc.collect()` / `clear_session()` calls take its time.

What users add to a loop against a leak costs more than it saves where it runs per step or
per request: a full collection walks every Python object (0.2 s in a TensorFlow process),
and `clear_session()` also drops what Keras built for the model, so its next call builds
and traces it again. keras#13118's server, told to clear the session and collect after
each `predict`, spent 0.4 s of each 0.45 s request on them (10x slower, RSS no lower), and
nothing grew for a trend to see. Read from the epoch records' `cleanup` block
(integrations/cleanups.py: calls, seconds and the calling line since the previous record):
in the newest RECENT epochs or windows of calls, each with a call, their seconds at least
SHARE_INFO of the time (SHARE_WARN: a warning). The first epoch of each fit is not read (a
loop of fits clears the session between fits, which models_in_loop advises and judges), nor
a custom loop's epoch ended by a new model's first update, nor a loop that fits a new model
each time (flower700's federated clients: models_in_loop's, whose fix replaces the cleanup).
"""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.detectors import models_in_loop
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import INFO, WARNING, Finding
from epochwatch.analysis.series import amount
from epochwatch.analysis.units import fmt_seconds
from epochwatch.analysis.view import RunAtEpoch

KIND = "cleanup_in_loop"
RECENT = 3
SHARE_INFO = 0.1
SHARE_WARN = 0.25
NAMES = {"gc.collect": "`gc.collect()`", "clear_session": "`clear_session()`"}
HINTS = {
    "gc.collect": (
        "a full collection walks every Python object each call ({each} here): take `gc.collect()` "
        "out of the per-step or per-request path (CPython collects on its own; at most once an "
        "epoch, where a cycle of large objects must go at once). If memory grows without it, "
        "find what keeps it: host_memory_growth names the line"
    ),
    "clear_session": (
        "`clear_session()` drops what Keras built and traced for the model ({each} a call here), so "
        "the next call builds it again: call it only between models you are done with (a loop of "
        "fits, before building the next model), never per batch or per request. Keras 3's "
        "`clear_session(free_memory=False)` at least skips its full garbage collection"
    ),
}


def _cleanups(rec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    block = rec.get("cleanup")
    return {k: v for k, v in block.items() if isinstance(v, dict)} if isinstance(block, dict) else {}


def _judged(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records whose cleanups happened inside them: not the first epoch of a fit, nor
    a custom loop's epoch that a new model's first update ended (what ran between the two
    models is in it)."""
    out = []
    for before, rec in zip([None, *records], records, strict=False):
        fit = rec.get("fit")
        if fit is not None and (before is None or before.get("fit") != fit):
            continue
        if rec.get("epoch_source") == "new_model":
            continue
        out.append(rec)
    return out


def _per(recs: list[dict[str, Any]], calls: int, windows: bool) -> str:
    """How often: after every inference call, every step, or so many times a record."""
    if windows:
        served = sum(amount((r.get("inference") or {}).get("calls")) for r in recs)
        if served and 0.75 <= calls / served <= 1.25:  # a window's first call has none before it
            return "after every inference call"
        return f"{calls / len(recs):.0f} times a window of calls"
    steps = sum(amount(r.get("steps")) for r in recs)
    if steps and 0.9 <= calls / steps <= 1.1:
        return "every step"
    return f"{calls / len(recs):.0f} times an epoch"


def detect(view: RunAtEpoch) -> list[Finding]:
    if (
        view.unit != "epoch"
        or view.last < 0
        or view.done(KIND, None)
        or view.reported("models_in_loop", None)
        or models_in_loop.new_models_each_fit(view)
    ):
        return []
    recs = _judged(view.epoch_records()[-(RECENT + 1) :])[-RECENT:]
    if len(recs) < RECENT or any(not _cleanups(r) for r in recs):
        return []
    names: dict[str, dict[str, Any]] = {}
    for r in recs:
        for name, got in _cleanups(r).items():
            into = names.setdefault(name, {"calls": 0, "seconds": 0.0, "where": got.get("where")})
            into["calls"] += int(amount(got.get("calls")))
            into["seconds"] += amount(got.get("seconds"))
    seconds = sum(v["seconds"] for v in names.values())
    # After a clear_session(), the next call traces the model's functions again: that time
    # (graph building, as the records time it) is the cleanup's cost too.
    traces = sum(amount((r.get("retraces") or {}).get("new")) for r in recs)
    rebuilt = 0.0
    if "clear_session" in names and traces >= names["clear_session"]["calls"]:
        rebuilt = sum(amount((r.get("retraces") or {}).get("graph_build_seconds")) for r in recs)
    seconds += rebuilt
    total = sum(amount(r.get("seconds")) for r in recs)
    share = min(1.0, seconds / total) if total > 0 else 0.0
    if share < SHARE_INFO:
        return []
    ordered = sorted(names, key=lambda n: -names[n]["seconds"])
    calls = max(names[n]["calls"] for n in ordered)
    windows = all(r.get("epoch_source") == "inference_calls" for r in recs)
    first, last = view.epoch_number(view.end - len(recs)), view.epoch_number(view.last)
    unit = "windows of calls" if windows else "epochs"
    span = f"{unit} {first + 1}-{last + 1}"
    said = " and ".join(NAMES.get(n, n) for n in ordered)
    where = "; ".join(f"{NAMES.get(n, n)} at {names[n]['where']}" for n in ordered if names[n].get("where"))
    title = (
        f"{said} called {_per(recs, calls, windows)}: {fmt_seconds(seconds)} ({share:.0%}) of the "
        f"{fmt_seconds(total)} of {span}" + (f" ({where})" if where else "")
    )
    if rebuilt:
        title += (
            f", with the traces each clear_session() makes the next call build again ({traces:,.0f} "
            f"traces, {fmt_seconds(rebuilt)})"
        )
    evidence: dict[str, Any] = {
        "cleanups": {
            n: {
                "calls": v["calls"],
                "seconds": round(v["seconds"], 6),
                "seconds_per_call": round(v["seconds"] / max(1, v["calls"]), 6),
                "where": v.get("where"),
            }
            for n, v in names.items()
        },
        "seconds": round(seconds, 6),
        "record_seconds": round(total, 6),
        "share": round(share, 4),
        "epochs": [first, last],
        "new_traces": int(traces),
        "rebuild_seconds": round(rebuilt, 6),
    }
    hint = "; ".join(
        HINTS[n].format(each=fmt_seconds(names[n]["seconds"] / max(1, names[n]["calls"])))
        for n in ordered
        if n in HINTS
    )
    severity = WARNING if share >= SHARE_WARN else INFO
    return [Finding(KIND, severity, title, evidence, hint, None, last)]


DETECTOR = Detector(name=KIND, detect=detect, persistence=1)
