"""A finding and what the hook's look inside found about it: `explain` records joined to
the findings they explain, for every view (report, console, `hook.findings()`).

An `explain` record (docs/trace-format.md) carries `explains` (the finding kind), the
`where` entries and a one-line `summary`. A finding of that kind gets `where`: the
newest record that named something (a later window saw the slowdown grown), else the
newest at all (which may say, usefully, that nothing in Python grew); with the profiler's
capture of it, where that is and the ops whose time grew (`ops`). Where the finding's own
likely cause names a callback whose clock accounts for the added time, the newest record
that names that callback first is chosen over a newer one that does not: a window that
held one odd epoch (a spike inside the compiled step) is no reason for the finding to say
two different things in its title and its `where`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_KEEP = ("method", "summary", "epoch", "epochs", "in_python", "profile_dir")


def _callback_cause(causes: Any) -> str | None:
    """The callback class the finding's first likely cause names, where its clock accounts."""
    if not isinstance(causes, list) or not causes or not isinstance(causes[0], Mapping):
        return None
    first = causes[0]
    if first.get("column") == "cb_seconds" and first.get("test") == "accounts" and first.get("key"):
        return str(first["key"])
    return None


def _names_first(record: Mapping[str, Any], callback: str) -> bool:
    where = record.get("where")
    if not isinstance(where, list) or not where or not isinstance(where[0], Mapping):
        return False
    top = where[0]
    return top.get("category") == "callback" and str(top.get("label", "")).split(".")[0] == callback


def where_for(kind: str, explains: Iterable[Mapping[str, Any]], causes: Any = None) -> dict[str, Any] | None:
    """The `where` block for a finding of `kind`, or None when nothing explains it.
    `causes`: the finding's `likely_causes`, where it has them."""
    mine = [e for e in explains if e.get("explains") == kind]
    if not mine:
        return None
    named = [e for e in mine if e.get("where")]
    callback = _callback_cause(causes)
    agreeing = [e for e in named if _names_first(e, callback)] if callback else []
    chosen = (agreeing or named or mine)[-1]
    out = {k: chosen[k] for k in _KEEP if k in chosen}
    out["places"] = list(chosen.get("where") or [])
    profiled = [e for e in mine if e.get("profile_dir")]
    if profiled:  # the framework profiler's capture of the same slowdown, and its ops
        last = profiled[-1]
        out["profile_dir"] = last["profile_dir"]
        out["ops"] = list(last.get("ops") or [])
        said = last.get("summary") if last is not chosen else None
        out["summary"] = "; ".join(
            s for s in (out.get("summary"), said or f"profile: {last['profile_dir']}") if s
        )
    return out


def attach_where(findings: list[dict[str, Any]], explains: Iterable[Mapping[str, Any]]) -> None:
    """Give each finding dict its `where` in place (findings of kinds nothing explains: none)."""
    explains = list(explains)
    if not explains:
        return
    for finding in findings:
        evidence = finding.get("evidence")
        causes = evidence.get("likely_causes") if isinstance(evidence, Mapping) else None
        where = where_for(str(finding.get("kind")), explains, causes)
        if where is not None:
            finding["where"] = where
