"""What the daemon keeps in memory of a run's findings, and shows of a run in `status`: bounded.

A run's trace holds its findings whole (their bytes count against the byte limits), but the
daemon also keeps them for `status`, `top` and the metrics, for as long as the run lasts.
A user sent 200 findings of 1 MB each: the daemon grew by 200 MB, and root's `status`
reply grew past what the daemon lets pile up for a client, so root's `status` and `top`
failed. So what is held is a small copy (the fields the views read, strings cut to
HELD_CHARS), at most HELD_FINDINGS different ones per run; a finding sent by a hook over
MAX_HOOK_FINDING_BYTES is written without its evidence, or not at all when even that is too
big (its bytes would be metered anyway: this keeps one record from costing the loop); and a run's status entry lists at most
STATUS_FINDINGS of them (with `findings_total`), so a status reply stays small however
much anyone sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

Record = dict[str, Any]

HELD_FINDINGS = 64
HELD_CHARS = 300
STATUS_FINDINGS = 20
MAX_HOOK_FINDING_BYTES = 256 * 1024
HELD_EVIDENCE_BYTES = 4096  # evidence the ledger keeps to judge news (a cause newly named)
_HELD_KEYS = ("type", "kind", "severity", "title", "target", "epoch", "t", "source", "update", "ended_epoch")
# What status says of each finding: enough for `top` to fold it into its ledger (update, ended).
_STATUS_KEYS = ("kind", "severity", "title", "target", "epoch", "update", "ended_epoch")


def short(value: Any) -> Any:
    """`value` if it is a number any view can encode or a short string; a longer string cut
    to HELD_CHARS; anything else its type's name (the repr of a user's structure nested
    1000 deep raised, and stopped a restarting daemon)."""
    if value is None or isinstance(value, (bool, float)) or (isinstance(value, int) and abs(value) < 1 << 53):
        return value
    if not isinstance(value, str):
        return f"<{type(value).__name__}>"
    return value if len(value) <= HELD_CHARS else value[: HELD_CHARS - 1] + "…"


def held_finding(rec: Mapping[str, Any]) -> Record:
    """The copy of a finding the daemon keeps for its views."""
    return {k: short(rec[k]) for k in _HELD_KEYS if k in rec}


def ledger_copy(rec: Record) -> Record:
    """What the session's ledger folds: the held copy, plus the evidence when it is small
    (whether an update is news reads it: a cause named for the first time)."""
    out = held_finding(rec)
    evidence = rec.get("evidence")
    if isinstance(evidence, dict) and _encoded_size(evidence) <= HELD_EVIDENCE_BYTES:
        out["evidence"] = evidence
    return out


def _encoded_size(value: Any) -> float:
    """Its size as JSON; infinite where it cannot be encoded (too deep, a huge int)."""
    try:
        return len(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return float("inf")


def status_findings(findings: list[Record]) -> Record:
    """A run's findings as its status entry shows them: at most STATUS_FINDINGS."""
    shown = [{k: f.get(k) for k in _STATUS_KEYS if k in f} for f in findings[:STATUS_FINDINGS]]
    out: Record = {"findings": shown}
    if len(findings) > len(shown):
        out["findings_total"] = len(findings)
    return out
