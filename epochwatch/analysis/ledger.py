"""The findings ledger: each (kind, target)'s finding as last reported, from finding records.

The one place that folds `finding` and `finding_update` records, so every view of a run
(the offline Run behind `report` and `check`, the daemon's session behind `status`, `top`
and the metrics, `top` reading a trace, the console, `hook.findings()`, the exporters)
holds the same findings with the same counts. A record replaces the known finding of its
key only when it is newer (a higher `update`): the hook's and the daemon's copies of one
finding, and older states arriving late, are dropped. An episode that is over keeps its
place, with `ended_epoch` set.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from epochwatch.analysis.findings import SEVERITIES, Finding, from_record, is_news, newly_judged

Key = tuple[str, str | None]
Record = dict[str, Any]
SHORT_SEVERITY = {"critical": "crit", "warning": "warn", "info": "info"}  # for narrow columns


class Ledger:
    """Findings of one run, each as last reported, in the order first found. Thread-safe:
    the hook's records and the daemon's arrive on different threads.

    A process that holds many runs' findings for long (the daemon) bounds what it holds:
    at most `limit` different (kind, target), each record as `keep` makes it (a small copy).
    A finding past the limit is still taken (news, for the trace) but not held."""

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]] = (),
        *,
        limit: int | None = None,
        keep: Callable[[Mapping[str, Any]], Record] = dict,
    ) -> None:
        self._findings: dict[Key, Finding] = {}  # insertion order: the order first found
        self._records: dict[Key, Record] = {}
        self._lock = threading.Lock()
        self._limit = limit
        self._keep = keep
        for rec in records:
            self.take(rec)

    def take(self, rec: Mapping[str, Any]) -> tuple[Finding, bool] | None:
        """Fold one finding record in: (the finding, whether it is news to say where people
        look) when it is newer than what was known of its key, else None (a repeat)."""
        finding = from_record(rec)
        with self._lock:
            before = self._findings.get(finding.key)
            if before is not None and finding.update <= before.update:
                return None
            if before is not None or self._limit is None or len(self._findings) < self._limit:
                self._findings[finding.key] = finding
                self._records[finding.key] = self._keep(rec)
        ended = finding.ended_epoch is not None and not (before is not None and newly_judged(before, finding))
        return finding, is_news(before, finding) and not ended

    def __len__(self) -> int:
        return len(self._findings)

    def __contains__(self, key: object) -> bool:
        return key in self._findings

    def get(self, key: Key) -> Finding | None:
        """The finding of `key` as last reported, or None."""
        with self._lock:
            return self._findings.get(key)

    def findings(self) -> list[Finding]:
        """Each finding as last reported, in the order first found."""
        with self._lock:
            return list(self._findings.values())

    def records(self) -> list[Record]:
        """The records behind `findings()`, as written (trace fields such as `source` kept)."""
        with self._lock:
            return list(self._records.values())

    def open(self) -> list[Finding]:
        """The findings whose episode is not over (no update said `ended_epoch`): what is
        still going on. Counts keep the ended ones: they were found."""
        return [f for f in self.findings() if f.ended_epoch is None]

    def counts(self) -> dict[str, int]:
        """Findings per severity, every severity present (0 when none): what every view counts."""
        return count_severities(self.findings())


def count_severities(findings: Iterable[Finding]) -> dict[str, int]:
    """Findings per severity, least severe first, every severity present."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    return counts


def counts_text(counts: Mapping[str, int], short: bool = False) -> str:
    """'1 warning, 1 info' (most severe first; 'no findings' when none): the one wording of a
    run's counts, in the console's closing line, `top` (short: '1 warn 1 info') and the report."""
    words = SHORT_SEVERITY if short else {}
    parts = [f"{n} {words.get(s, s)}" for s, n in reversed(list(counts.items())) if n]
    if not parts:
        return "-" if short else "no findings"
    return (" " if short else ", ").join(parts)
