"""Online and offline findings of one trace, side by side (issue 23).

What the hook said while the run went (the trace's `finding`/`finding_update` records,
each as last reported) and what `epochwatch report` says afterwards on the same file
(the offline replay, without the findings the trace carries) must be the same findings.
Every test of issue 23's cases asserts it through `assert_same_findings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from epochwatch.analysis.files import analyze_file
from epochwatch.trace.reader import iter_records

Key = tuple[str, str | None, str]


def online_findings(path: Path) -> dict[tuple[str, str | None], dict[str, Any]]:
    """The trace's own findings, each as last reported (updates replace what they update)."""
    latest: dict[tuple[str, str | None], dict[str, Any]] = {}
    for r in iter_records(path):
        if r.get("type") in ("finding", "finding_update"):
            latest[(r["kind"], r.get("target"))] = r
    return latest


def offline_findings(path: Path) -> dict[tuple[str, str | None], dict[str, Any]]:
    """What `report` finds again on the file (the replay only), as records."""
    analyzed = analyze_file(path)
    return {f.key: f.to_dict() for f in analyzed.findings}


def compared(path: Path) -> tuple[set[Key], set[Key]]:
    """(online, offline) as sets of (kind, target, severity)."""

    def keys(found: dict[tuple[str, str | None], dict[str, Any]]) -> set[Key]:
        return {(k, t, str(f.get("severity"))) for (k, t), f in found.items()}

    return keys(online_findings(path)), keys(offline_findings(path))


def assert_same_findings(path: Path) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Online and offline agree on kind, target and severity; returns the offline ones."""
    online, offline = compared(path)
    assert online == offline, f"online only: {online - offline}; offline only: {offline - online}"
    return offline_findings(path)
