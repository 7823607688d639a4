"""A run's headline facts, worded once for the text and the HTML report.

How it ended, its epochs, time and overhead, its new tf.function traces after warm-up
(analysis/retrace_count.py) and its findings per severity (analysis/ledger.py): the same
numbers `top`, the console and the daemon's status show for the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from epochwatch.analysis.findings import from_record
from epochwatch.analysis.ledger import count_severities, counts_text
from epochwatch.analysis.units import fmt_duration, fmt_pct


def ended(run: Mapping[str, Any]) -> str:
    """'completed · 12 epochs · 3 min · epochwatch overhead 0.4% of epoch time · 57 retraces after warm-up'."""
    how = str(run.get("ended", "?"))
    if how == "raised" and run.get("exception"):
        how += f" {run['exception']}" + (f": {run['message']}" if run.get("message") else "")
    elif how == "abruptly":
        how = "abruptly (no run_end: killed, or still running)"
    parts = [how, f"{run.get('epochs', 0)} epochs"]
    if isinstance(run.get("seconds"), int | float):
        parts.append(fmt_duration(run["seconds"]))
    if isinstance(run.get("overhead_share"), int | float):
        parts.append(f"epochwatch overhead {fmt_pct(run['overhead_share'])} of epoch time")
    retraces = run.get("retraces_after_warmup")
    if isinstance(retraces, int) and retraces > 0:
        parts.append(f"{retraces} new tf.function traces after warm-up")
    return " · ".join(parts)


def findings(listed: Sequence[Mapping[str, Any]]) -> str:
    """'2: 1 warning, 1 info' for a list of report-JSON findings, '0' for none."""
    if not listed:
        return "0"
    return f"{len(listed)}: {counts_text(count_severities(from_record(f) for f in listed))}"
