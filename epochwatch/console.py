"""Say on stderr, while the run trains, what epochwatch found: where users already look.

One line per new finding (warning and up) as it is found, like the warnings Python and
TensorFlow print; one more when an update of it is news (graver, or it names its cause
now: analysis/findings.is_news); and one closing line at the end of the run: epochs, findings by
severity, and the trace to open (`epochwatch report <trace>`). Findings made by a daemon
come back over its socket (see trace/socket_sink.py), so the lines are the same in both
modes. EPOCHWATCH_QUIET=1 silences all of it; EPOCHWATCH_QUIET=<severity> (info,
warning, critical) prints only findings at or above that severity, and the closing line.

The Console also keeps the run's findings in the run's ledger (analysis/ledger.py: each as
last reported, updates replace it); `findings` gives them as report-JSON dicts: `hook.findings()`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from epochwatch.analysis.findings import RANK, SEVERITIES, WARNING
from epochwatch.analysis.ledger import Ledger, counts_text
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
        self.ledger = Ledger()
        self.trace: str | None = None  # where to read more; set by the hook as soon as known
        # What the hook saw when it saw no training ("no training seen: 1,250 predict calls,
        # RSS +19 MiB"), leading the closing line; set by the hook (issue 24).
        self.seen: Callable[[], str | None] | None = None

    @property
    def silent(self) -> bool:
        return self.level >= _SILENT

    @property
    def findings(self) -> list[dict[str, Any]]:
        """The run's findings as report-JSON dicts, in the order first found, each as last reported."""
        return [{**f.to_dict(), "source": "trace"} for f in self.ledger.findings()]

    def reset(self) -> None:
        """A new run in the same process (a notebook's next fit)."""
        self.ledger.clear()

    def observe(self, rec: Mapping[str, Any]) -> None:
        """A `finding` or `finding_update` record, from this process or from the daemon;
        repeats are ignored, updates replace what they update and are said when news."""
        taken = self.ledger.take(rec)
        if taken is None:
            return
        finding, news = taken
        if news and RANK.get(finding.severity, 0) >= self.level:
            self._say(self.finding_line(finding.to_dict()))

    def finding_line(self, finding: Mapping[str, Any]) -> str:
        where = f"epoch {finding['epoch']}" if finding.get("epoch") is not None else "this run"
        evidence = finding.get("evidence") or {}
        updated = evidence.get("updated_epoch") if finding.get("update") else None
        if isinstance(updated, int):
            where += f", updated at epoch {updated}"
        more = f"epochwatch report {self.trace}" if self.trace else "docs/findings.md"
        return one_line(
            f"{finding['severity']} {finding['kind']}: {finding['title']} ({where}; more: {more})", 600
        )

    def closing_line(self, epochs: int, trace: str | None) -> str:
        found = counts_text(self.ledger.counts())
        where = f"; trace {trace}" if trace else ""
        noun = "epoch" if epochs == 1 else "epochs"
        seen = self.seen() if self.seen is not None else None
        lead = f"{seen}; " if seen else ""
        return one_line(f"{lead}{epochs} {noun}, {found}{where}", 1000)

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
