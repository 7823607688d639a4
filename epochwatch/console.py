"""Say on stderr, while the run trains, what epochwatch found: where users already look.

One line per new finding (warning and up) as it is found, like the warnings Python and
TensorFlow print; one more when an update of it is news (graver, or it names its cause
now: analysis/findings.is_news); and one closing line at the end of the run: epochs, findings by
severity, and the trace to open (`epochwatch report <trace>`). Findings made by a daemon
come back over its socket (see trace/socket_sink.py), so the lines are the same in both
modes. EPOCHWATCH_QUIET=1 silences all of it; EPOCHWATCH_QUIET=<severity> (info,
warning, critical) prints only findings at or above that severity, and the closing line.

The Console also keeps the run's findings, each as last reported (updates replace it), as
report-JSON dicts: `hook.findings()`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO

from epochwatch.analysis.explained import attach_where
from epochwatch.analysis.findings import RANK, SEVERITIES, WARNING, LatestFindings
from epochwatch.text_safety import escape

PREFIX = "epochwatch: "
_SILENT = len(SEVERITIES)  # a threshold no severity reaches


def threshold(quiet: str | None) -> int:
    """EPOCHWATCH_QUIET -> the lowest severity rank printed (_SILENT: nothing at all)."""
    value = (quiet or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return RANK[WARNING]
    if value in RANK:
        return RANK[value]
    return _SILENT  # 1, true, yes, anything else: quiet


def one_line(text: str, limit: int = 300) -> str:
    """Printable on one line: control characters (escapes, newlines) shown, not obeyed."""
    out = escape(text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


class Console:
    """Collects a run's findings; prints each new one at or above the threshold once."""

    def __init__(self, quiet: str | None = None, stream: TextIO | None = None) -> None:
        self.level = threshold(quiet)
        self._stream = stream
        self._lock = threading.Lock()
        self._latest = LatestFindings()
        self.findings: list[dict[str, Any]] = []  # in the order first found; each as last reported
        self.trace: str | None = None  # where to read more; set by the hook as soon as known
        self._explains: list[Mapping[str, Any]] = []  # `explain` records: each finding's `where`

    @property
    def silent(self) -> bool:
        return self.level >= _SILENT

    def reset(self) -> None:
        """A new run in the same process (a notebook's next fit)."""
        with self._lock:
            self._latest.clear()
            self.findings = []
            self._explains = []

    def observe(self, rec: Mapping[str, Any]) -> None:
        """A `finding` or `finding_update` record, from this process or from the daemon;
        repeats are ignored, updates replace what they update and are said when news."""
        taken = self._latest.take(rec)
        if taken is None:
            return
        finding, news = taken
        shown = {**finding.to_dict(), "source": "trace"}
        with self._lock:
            attach_where([shown], self._explains)
            at = next(
                (i for i, f in enumerate(self.findings) if (f["kind"], f["target"]) == finding.key), None
            )
            if at is None:
                self.findings.append(shown)
            else:
                self.findings[at] = shown
        if news and RANK.get(finding.severity, 0) >= self.level:
            self._say(self.finding_line(shown))

    def explained(self, rec: Mapping[str, Any]) -> None:
        """An `explain` record: its finding (now or when it comes) gets `where`; said once
        per finding kind, when a finding of that kind is already known."""
        with self._lock:
            self._explains.append(rec)
            attach_where(self.findings, self._explains)
            shown = [f for f in self.findings if f["kind"] == rec.get("explains")]
        if shown and rec.get("where") and RANK.get(shown[0]["severity"], 0) >= self.level:
            self._say(one_line(f"{shown[0]['kind']} explained: {rec.get('summary')}", 600))

    def finding_line(self, finding: Mapping[str, Any]) -> str:
        where = f"epoch {finding['epoch']}" if finding.get("epoch") is not None else "this run"
        evidence = finding.get("evidence") or {}
        updated = evidence.get("updated_epoch") if finding.get("update") else None
        if isinstance(updated, int):
            where += f", updated at epoch {updated}"
        more = f"epochwatch report {self.trace}" if self.trace else "docs/findings.md"
        found = finding.get("where")
        inside = f"; {found['summary']}" if isinstance(found, Mapping) and found.get("summary") else ""
        return one_line(
            f"{finding['severity']} {finding['kind']}: {finding['title']}{inside} ({where}; more: {more})",
            800,
        )

    def closing_line(self, epochs: int, trace: str | None) -> str:
        counts = {s: 0 for s in SEVERITIES}
        with self._lock:
            for f in self.findings:
                counts[f["severity"]] = counts.get(f["severity"], 0) + 1
        total = sum(counts.values())
        found = (
            ", ".join(f"{counts[s]} {s}" for s in reversed(SEVERITIES) if counts[s])
            if total
            else "no findings"
        )
        where = f"; trace {trace}" if trace else ""
        noun = "epoch" if epochs == 1 else "epochs"
        return one_line(f"{epochs} {noun}, {found}{where}", 1000)

    def close(self, epochs: int, trace: str | None) -> None:
        """The run ended: one line, unless silenced."""
        if not self.silent:
            self._say(self.closing_line(epochs, trace))

    def _say(self, line: str) -> None:
        try:
            stream = self._stream or sys.stderr
            stream.write(PREFIX + line + "\n")
            stream.flush()
        except Exception:
            pass
