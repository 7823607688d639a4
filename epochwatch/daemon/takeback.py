"""Taking a run back at restart, in time and memory that do not grow with its trace.

A trace belongs to its run's user, who can write it: grow it to gigabytes, or make it
sparse. Reading it whole at restart made a restart's time grow with what users wrote
(300 MB: 4.3 s; a few GB would pass systemd's watchdog). So the daemon keeps a `mark` in
the run's resume state (store.py, saved every few seconds while the run goes): the trace's
size and the run's counters at that size. At restart it reads, with the user's rights
(asuser.py), only the first line (run_start, at most 1 MiB) and the last TAIL_BYTES (4 MiB):

- the counters are the mark's plus what the tail holds after the mark's offset;
- the newest REPLAY_EPOCHS epochs in the tail are fed to the detectors again (they only
  look at the newest few hundred epochs);
- findings after the mark join those the mark lists, so none is written twice.

A run whose tail begins after its mark (more than TAIL_BYTES written since, which the
daemon's byte rate does not allow in MARK_SECONDS) counts from the tail and says so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from epochwatch.daemon.asuser import open_users_file
from epochwatch.trace import schema
from epochwatch.trace.reader import record_of  # None for a line nested past what the socket takes

if TYPE_CHECKING:
    from epochwatch.daemon.session import Session
    from epochwatch.daemon.store import SessionState

log = logging.getLogger("epochwatch.daemon")

TAIL_BYTES = 4 << 20
HEAD_BYTES = 1 << 20
# Epochs (and what came with them) fed to the detectors again; OnlineAnalyzer keeps 256.
REPLAY_EPOCHS = 300
# How often a run's mark is saved while it goes (from the sampling tick).
MARK_SECONDS = 5.0
# Findings a mark lists (status and metrics show them after a restart).
MARK_FINDINGS = 50
_FINDING_FIELDS = ("type", "kind", "severity", "title", "target", "epoch", "update", "ended_epoch")
Record = dict[str, Any]


@dataclass
class Tail:
    """What the start and the end of a trace say (positions are byte offsets)."""

    run_start: Record | None = None
    records: list[tuple[int, Record]] = field(default_factory=list)
    start: int = 0  # where the tail begins
    size: int = 0

    def next_seq(self, mark: Any = None) -> int:
        """After the highest hook `seq` in the head, the tail and the mark."""
        recs = [r for _, r in self.records] + ([self.run_start] if self.run_start else [])
        seqs = [r["seq"] for r in recs if isinstance(r.get("seq"), int) and not isinstance(r["seq"], bool)]
        marked = mark.get("next_seq") if isinstance(mark, dict) else None
        if isinstance(marked, int) and not isinstance(marked, bool):
            seqs.append(marked - 1)
        return max(seqs, default=-1) + 1


def read_tail(state: SessionState, traces: Any) -> Tail:
    """The trace's first line and its last TAIL_BYTES, read as the run's user."""
    fd = open_users_file(traces, f"{state.run_id}.jsonl", state.uid, state.gid)
    tail = Tail()
    if fd is None:
        return tail
    with os.fdopen(fd, "rb") as fh:
        tail.size = os.fstat(fh.fileno()).st_size
        head = fh.readline(HEAD_BYTES)
        first = record_of(head)
        if first is not None and first.get("type") == schema.RUN_START:
            tail.run_start = first
        tail.start = max(len(head), tail.size - TAIL_BYTES)
        fh.seek(tail.start)
        data = fh.read(tail.size - tail.start)
    pos = tail.start
    lines = data.split(b"\n")
    for n, line in enumerate(lines):
        rec = record_of(line) if (n > 0 or tail.start == len(head)) and n < len(lines) - 1 else None
        if rec is not None:
            tail.records.append((pos, rec))
        pos += len(line) + 1
    return tail


def mark_of(session: Session) -> Record:
    """The run's counters at the trace's current size, for its resume state."""
    return {
        "offset": session.trace.offset(),
        "next_seq": session.next_seq,
        "epochs": session.epochs,
        "retraces": session.retrace_count.total,
        "retraces_after_warmup": session.retrace_count.after_warmup,
        "last_epoch": session.last_epoch,
        "last_epoch_t": session.last_epoch_t,
        "last_epoch_seconds": session.last_epoch_seconds,
        "findings": [{k: f[k] for k in _FINDING_FIELDS if k in f} for f in session.findings[-MARK_FINDINGS:]],
    }


def take_back(session: Session, tail: Tail) -> None:
    """Rebuild what the previous daemon knew of the run from its mark and its trace's tail."""
    mark = session.state.mark if isinstance(session.state.mark, dict) else {}
    raw = mark.get("offset")
    offset = raw if isinstance(raw, int) and raw >= 0 else 0
    if offset > tail.size:  # the trace was cut by its user: count what is there
        mark, offset = {}, 0
    _apply_mark(session, mark)
    if tail.start > offset and tail.start > 0:
        log.warning(
            "run %s: counted from the last %d bytes of its trace only", session.run_id, tail.size - tail.start
        )
    if tail.run_start is not None:
        session.run_start = tail.run_start
        session.analyzer.add(tail.run_start)
    epochs = [pos for pos, r in tail.records if r.get("type") == schema.EPOCH]
    replay_from = epochs[-REPLAY_EPOCHS] if len(epochs) >= REPLAY_EPOCHS else 0
    new: list[Record] = []
    for pos, rec in tail.records:
        type_ = rec.get("type")
        if pos >= offset:
            if type_ == schema.EPOCH:
                session.count_epoch(rec)
            elif type_ in schema.FINDINGS:
                session.remember_finding(rec)
        if type_ in (*schema.FINDINGS, schema.RUN_START) or (
            pos < replay_from and type_ in (schema.EPOCH, schema.SAMPLE)
        ):
            continue
        new.extend(session.analyzer.add(rec))
    for finding in new:  # written after reading, not into the file being read
        try:
            session.write_finding(finding)
        except OSError as exc:  # a trace at its byte limit, a full disk: the run goes on unwritten
            log.warning("run %s: a finding taken back was not written: %s", session.run_id, exc)
            break


def _apply_mark(session: Session, mark: Record) -> None:
    for target, name, mark_name in (
        (session, "epochs", "epochs"),
        (session.retrace_count, "total", "retraces"),
        (session.retrace_count, "after_warmup", "retraces_after_warmup"),
    ):
        value = mark.get(mark_name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            setattr(target, name, value)
    for name in ("last_epoch", "last_epoch_t", "last_epoch_seconds"):
        value = mark.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            setattr(session, name, value)
    findings = mark.get("findings")
    for rec in findings[:MARK_FINDINGS] if isinstance(findings, list) else ():
        if isinstance(rec, dict):
            session.remember_finding(rec)
