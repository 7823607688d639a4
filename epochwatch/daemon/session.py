"""One attached run inside the daemon: its trace, its samples, its findings, its end.

A Session outlives connections: the hook may reconnect (same process, same token) after
a network hiccup or a daemon restart and carry on where the trace ends. Everything here
runs on the daemon's event loop thread; the only I/O is appending to the run's trace.
Records from the hook are written in the order sent, each with the daemon's run id and
the hook's `seq`; the daemon adds `peaks` to epochs, its own `sample`, `finding` and, for a
process that went away without saying, `run_end` records.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from epochwatch import __version__
from epochwatch.analysis.guarded import GuardedAnalyzer
from epochwatch.analysis.ledger import Ledger
from epochwatch.analysis.retrace_count import RetraceCount
from epochwatch.daemon.config import Sampling
from epochwatch.daemon.findings import log_finding, tell_hook
from epochwatch.daemon.held import (
    HELD_FINDINGS,
    MAX_HOOK_FINDING_BYTES,
    held_finding,
    ledger_copy,
    short,
    status_findings,
)
from epochwatch.daemon.lastepoch import LastEpoch, last_epoch
from epochwatch.daemon.runsamplers import NvmlHub, RunSamplers
from epochwatch.daemon.sampling import Decimator, PeakTracker, epoch_end_values
from epochwatch.daemon.store import SessionState, TraceFile
from epochwatch.daemon.vanished import oom_hint, vanished_record
from epochwatch.trace import schema
from epochwatch.trace.writer import dumps_line

if TYPE_CHECKING:
    from epochwatch.daemon.lograte import UidLog
    from epochwatch.daemon.peer import Peer

log = logging.getLogger("epochwatch.daemon")
Record = dict[str, Any]

# Records the hook can hold unacknowledged (its queue): a handover never reaches further back.
HOOK_QUEUE_RECORDS = 10_000
# `ended` of a run whose hook took the rest over (no run_end in this trace: it is in the hook's).
HANDED_OVER = "handed over to the hook"


def _seq_at_least(rec: Record, first: int) -> bool:
    seq = rec.get("seq")
    return isinstance(seq, int) and seq >= first


class Session:
    def __init__(
        self,
        state: SessionState,
        trace: TraceFile,
        *,
        sampling: Sampling,
        online: bool,
        hub: NvmlHub,
        next_seq: int = 0,
        parents: Any = None,
        uid_log: UidLog | None = None,
    ) -> None:
        self.state = state
        self.uid_log = uid_log  # the log lines its client causes, rate-limited by uid (lograte.py)
        self.trace = trace
        self.next_seq = next_seq
        self.sampling = sampling
        self.run_start: Record | None = None
        self.parents = parents  # where its restores find their parents (daemon/parents.py)
        self.analyzer = GuardedAnalyzer(self._detection_failed, enabled=online, parents=parents)
        self.peaks = PeakTracker()
        self.decimator = Decimator(sampling, state.started)
        self.samplers = RunSamplers(state.pid, state.run_id, hub, state.uid) if state.pid > 0 else None
        self.epochs = 0
        self.last_epoch: int | None = None
        self.last_epoch_t: float | None = None
        self.last_epoch_facts = LastEpoch()  # step time, input wait, all-reduce time: for metrics
        self.last_epoch_seconds: float | None = None
        self.retrace_count = RetraceCount()  # tf.function traces over the run's epochs: metrics, status
        # the run's findings, the hook's and the daemon's, as last reported: small copies, HELD_FINDINGS at most
        self.ledger = Ledger(limit=HELD_FINDINGS, keep=held_finding)
        self.pending_analysis: list[Record] = []
        self.watched: dict[str, str] = {}  # resolved path -> role
        self.pending_watches: dict[str, str] = {}  # asked-for path that does not exist yet -> role
        self.ended: str | None = None  # run_end.ended once the hook sent it
        self.exited = False  # the process is gone
        self.finished = False
        self.connection: Peer | None = None  # the hook's connection while it is attached
        self.detached_since: float | None = time.monotonic()
        self.latest_sample: Record | None = None
        self.gaps = 0
        self.after_end = 0  # records refused because they came after run_end
        self.big_findings = 0  # findings refused for their size
        self.contention: Record | None = None
        self.dirs: Record = {}
        self.write_problem: str | None = None  # why the trace could not be written, while so
        # (seq, offset in the trace before it) of the latest hook records, to cut back to
        # at a handover; as many as the hook can hold unacknowledged
        # (seq, offset, is an epoch) of the newest records written: where a handover cuts
        self.offsets: deque[tuple[int, int, bool]] = deque(maxlen=HOOK_QUEUE_RECORDS)

    # -- identity --------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def uid(self) -> int:
        return self.state.uid

    @property
    def pid(self) -> int:
        return self.state.pid

    @property
    def trace_path(self) -> Path:
        return self.trace.path

    @property
    def retraces(self) -> int:
        """Every new tf.function trace of the run's epochs (the metrics' counter)."""
        return self.retrace_count.total

    @property
    def findings(self) -> list[Record]:
        """Each finding as last reported (status, top and the metrics read these)."""
        return self.ledger.records()

    # -- records from the hook -------------------------------------------------------------

    def accept(self, seq: int, rec: Record, peer: Record, *, analyze: bool = True) -> Record | None:
        """Write one hook record (numbered `seq`); returns it as written, or None if skipped.

        With analyze=False the record waits in `pending_analysis` for `analyze_pending()`,
        so the daemon can acknowledge a batch before spending time on the detectors.

        A seq below next_seq is a replay of something already written and is skipped; a
        seq above it means the hook dropped records while it could not send (it says so
        in a notice), and is taken as it comes. Nothing is taken after the run's run_end
        (run_end is a trace's last line), and every record's bytes count against the
        byte limits (quota.py), run_end's too.
        """
        if seq < self.next_seq:
            return None
        if self._refused_after_end(rec):
            self.next_seq = seq + 1  # acknowledged, so a hook does not send it again
            return None
        if seq > self.next_seq:
            self._note_gap(seq)
        type_ = rec.get("type")
        rec["run_id"] = self.run_id
        rec["seq"] = seq
        if not isinstance(rec.get("t"), (int, float)):
            rec["t"] = time.time()
        if type_ in schema.FINDINGS and not (
            self._take_finding(rec) and self.ledger.take(ledger_copy(rec)) is not None
        ):
            self.next_seq = seq + 1
            return None  # too big to take, or the daemon already wrote this one (or a newer state)
        if type_ == schema.RUN_START:
            self._on_run_start(rec, peer)
        elif type_ == schema.EPOCH:
            self._on_epoch(rec)
        elif type_ == schema.RUN_END:
            self.analyze_pending()  # findings of the last epochs, the verdict at the end, then
            for finding in self.analyzer.finish():
                self.write_finding(finding)
            self.flush()  # the open sample window, go before the last line
        # may raise OSError (a full disk, a byte limit): then next_seq stays, the hook resends
        offset = self.trace.offset()
        self.trace.write(rec, essential=type_ == schema.RUN_END)
        self.offsets.append((seq, offset, type_ == schema.EPOCH))
        self.next_seq = seq + 1
        if type_ == schema.EPOCH:
            self.count_epoch(rec)  # only once written: a refused epoch is resent, not counted twice
        elif type_ == schema.RUN_END:
            ended = rec.get("ended")
            self.ended = ended if isinstance(ended, str) else "unknown"
        if type_ not in schema.FINDINGS:
            if analyze:
                self._analyze(rec)
            else:
                self.pending_analysis.append(rec)
        return rec

    def _refused_after_end(self, rec: Record) -> bool:
        """True for a record that comes after the run's run_end: it is not written (said
        once in the log), whatever its type; run_end stays the trace's last line and its
        bytes the last ones the run is charged."""
        if self.ended is None:
            return False
        self.after_end += 1
        if self.after_end == 1:
            log.warning(
                "run %s (uid %d) sent a %s record after its run_end; refused, as is anything after it",
                self.run_id,
                self.uid,
                short(rec.get("type")),
            )
        return True

    def _note_gap(self, seq: int) -> None:
        """Records next_seq..seq-1 never came: a notice in the trace (its bytes counted);
        the log says the first such gap of a run, later ones are counted in `gaps`."""
        if not self.gaps:
            log.warning(
                "run %s: records %d..%d never arrived (the hook dropped them)",
                self.run_id,
                self.next_seq,
                seq - 1,
            )
        self.gaps += seq - self.next_seq
        message = (
            f"records {self.next_seq}..{seq - 1} of the hook never arrived "
            "(it dropped them while the daemon could not take them)"
        )
        self.trace.write(schema.record(schema.NOTICE, self.run_id, part="daemon", message=message))

    def _take_finding(self, rec: Record) -> bool:
        """Whether a finding the hook sent may be written by its size: one
        over MAX_HOOK_FINDING_BYTES (held.py) without its evidence (`evidence_bytes` says
        how much there was), and not at all if that is still too big."""
        size = len(dumps_line(rec))
        if size <= MAX_HOOK_FINDING_BYTES:
            return True
        if "evidence" in rec:
            rec["evidence_bytes"] = len(dumps_line({"e": rec.pop("evidence")}))
            if len(dumps_line(rec)) <= MAX_HOOK_FINDING_BYTES:
                return True
        self.big_findings += 1
        if self.big_findings == 1:
            log.warning(
                "run %s (uid %d) sent a finding over %d bytes; refused (further ones are counted)",
                self.run_id,
                self.uid,
                MAX_HOOK_FINDING_BYTES,
            )
        return False

    def notice(self, message: str, *, part: str = "daemon", essential: bool = False, **fields: Any) -> None:
        """A `notice` from the daemon in the run's trace (and the log); a trace that cannot
        be written costs the notice, never the caller. `essential`: past the byte limits."""
        if self.uid_log is not None:
            self.uid_log.warning(self.uid, "run %s: %s", self.run_id, message)
        else:
            log.warning("run %s: %s", self.run_id, message)
        rec = schema.record(schema.NOTICE, self.run_id, part=part, **fields, message=message)
        try:
            self.trace.write(rec, essential=essential)
        except OSError as exc:
            log.error("run %s: cannot write a notice: %s", self.run_id, exc.strerror or exc)

    def hand_over(self, first: int) -> None:
        """The hook wrote records from `first` on to its embedded trace (it stopped waiting
        for a stalled daemon): any of them already written here are cut off the end of this
        trace (with whatever the daemon wrote after them), and a notice with `handover_seq`
        says where the rest of the run is. The run then ends without a run_end here."""
        cut = next((offset for seq, offset, _e in self.offsets if seq >= first), None)
        if cut is not None:
            self.trace.truncate(cut)
            dropped = self.next_seq - first
            self.epochs = max(0, self.epochs - sum(epoch for s, _o, epoch in self.offsets if s >= first))
            self.offsets = deque(
                (kept for kept in self.offsets if kept[0] < first), maxlen=HOOK_QUEUE_RECORDS
            )
        else:
            dropped = 0
        self.pending_analysis = [r for r in self.pending_analysis if not _seq_at_least(r, first)]
        self.ended = HANDED_OVER
        self.notice(
            f"the hook wrote records {first} on to its own embedded trace (the daemon was too slow "
            f"to take them); {dropped} already written here were removed",
            handover_seq=first,
            essential=True,
        )

    def analyze_pending(self) -> None:
        pending, self.pending_analysis = self.pending_analysis, []
        for rec in pending:
            self._analyze(rec)

    def _on_run_start(self, rec: Record, peer: Record) -> None:
        rec["mode"] = "daemon"
        rec["daemon"] = {"epochwatch": __version__, "peer": peer}
        self.run_start = rec
        env = rec.get("env")
        if isinstance(env, dict) and isinstance(env.get("script"), str) and env["script"]:
            self.state.script = env["script"][:300]
        self.analyzer.add(rec)

    def _on_epoch(self, rec: Record) -> None:
        start, end = rec.get("start"), rec.get("end")
        peaks = self.peaks.peaks(
            float(start) if isinstance(start, (int, float)) else None,
            float(end) if isinstance(end, (int, float)) else None,
        )
        own = epoch_end_values(rec)  # the hook's own readings at the epoch end bound the peaks too
        if own:
            peaks = peaks if peaks is not None else {"samples": 0}
            for key, value in own.items():
                if value > peaks.get(key, float("-inf")):
                    peaks[key] = value
        if peaks is not None:
            rec["peaks"] = peaks

    def count_epoch(self, rec: Record) -> None:
        self.epochs += 1
        epoch = rec.get("epoch")
        self.last_epoch = epoch if isinstance(epoch, int) else self.last_epoch
        self.last_epoch_facts = last_epoch(rec)
        t = rec.get("t")
        self.last_epoch_t = float(t) if isinstance(t, (int, float)) else time.time()
        seconds = rec.get("seconds")
        self.last_epoch_seconds = float(seconds) if isinstance(seconds, (int, float)) else None
        self.retrace_count.add(rec)

    def _analyze(self, rec: Record) -> None:
        for finding in self.analyzer.add(rec):
            self.write_finding(finding)

    def _detection_failed(self, exc: BaseException) -> None:
        log.error("run %s: online detection switched off: %s: %s", self.run_id, type(exc).__name__, exc)

    def write_finding(self, finding: Record) -> None:
        update = finding.get("type") == schema.FINDING_UPDATE
        rec = dict(finding)
        rec["type"] = schema.FINDING_UPDATE if update else schema.FINDING
        rec["run_id"] = self.run_id
        rec.setdefault("t", time.time())
        rec["source"] = "daemon"
        taken = self.ledger.take(ledger_copy(rec))
        if taken is None:
            return  # known already (the hook's copy, or a newer state of it)
        self.trace.write(rec)
        tell_hook(self.connection, rec, self.run_id)
        log_finding(self.run_id, rec, news=taken[1])

    def remember_finding(self, rec: Record) -> None:
        """A finding already in the trace (a restarted daemon reading it back): kept for
        status, and never written again."""
        self.ledger.take(ledger_copy(rec))

    # -- samples ---------------------------------------------------------------------------

    def on_sample(self, sample: Record) -> None:
        if self.ended is not None:
            return  # run_end is the last line of a trace
        self.latest_sample = sample
        self.peaks.add(sample)
        if self.run_start is None:
            return  # run_start is the first line of a trace; peaks still count this sample
        out = self.decimator.add(sample)
        if out is not None:
            self._write_sample(out)

    def _write_sample(self, sample: Record) -> None:
        rec: Record = {"type": schema.SAMPLE, "run_id": self.run_id}
        rec.update(sample)
        if self.contention is not None:
            rec["contention"] = self.contention
        if self.dirs:
            rec["dirs"] = schema.dirs_block(self.dirs)
        self.trace.write(rec)
        self._analyze(rec)

    # -- the end ---------------------------------------------------------------------------

    def write_vanished(self, *, daemon_was_down: bool = False) -> None:
        """run_end for a process that went away without one: last samples, and why, if we can tell."""
        now = time.time()
        started = self.run_start.get("t") if self.run_start else None
        rec = vanished_record(
            self.run_id,
            now=now,
            started=float(started if isinstance(started, (int, float)) else self.state.started),
            epochs=self.epochs,
            last_epoch=self.last_epoch,
            last_raw=list(self.peaks.last_raw),
            oom=self.oom_hint(),
            away=time.monotonic() - self.detached_since if self.detached_since is not None else 0.0,
            daemon_was_down=daemon_was_down,
        )
        self.trace.write(rec, essential=True)
        self.ended = schema.ENDED_VANISHED

    def oom_hint(self) -> str | None:
        """Why the process likely died, when the last samples point at memory."""
        return oom_hint(list(self.peaks.last_raw), self.run_start)

    def flush(self) -> None:
        """Write the open sample window (shutdown and run end)."""
        if self.ended is not None:
            return
        out = self.decimator.flush()
        if out is not None:
            self._write_sample(out)

    def close(self) -> None:
        if self.ended is None:
            self.analyze_pending()
        self.flush()
        self.trace.close()

    # -- status ----------------------------------------------------------------------------

    def summary(self) -> Record:
        out: Record = {
            "run_id": self.run_id,
            "pid": self.pid,
            "uid": self.uid,
            "script": self.state.script,
            "started": self.state.started,
            "attached": self.connection is not None,
            "epochs": self.epochs,
            "retraces": self.retrace_count.after_warmup,
            "trace": str(self.trace_path),
            **status_findings(self.findings),
        }
        last = {
            "epoch": self.last_epoch,
            "last_epoch_t": self.last_epoch_t,
            "last_epoch_seconds": self.last_epoch_seconds,
        }
        out.update({k: v for k, v in last.items() if v is not None})
        sample = self.latest_sample or {}
        out.update({k: sample[k] for k in ("rss_bytes", "cpu_pct") if k in sample})
        return out
