"""The runs the daemon keeps: attach, resume, records, watches, how each one ends, and status.

A run (a Session) outlives its connections: the hook may reconnect with its token after a
hiccup or a daemon restart and carry on where the trace ends. The registry knows a client
only as a Peer (its credentials, send, fail, close), never the socket or the server; the
server hands it the config and four callbacks (status changed, a run ended, a run attached,
run this blocking close off the loop).

Which directories a run watches is runwatch.py's policy, asked here; how a run ends
(goodbye, lost connection, process exit, run_end) is runend.py's `RunEnds`, which the
registry holds and hands its runs and `_forget`.

The way of a record is one-directional: Connection -> RunRegistry.deliver -> Session.accept.
`deliver` writes the batch, acknowledges it, and only then runs the detectors, so the hook's
ack never waits on analysis.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from epochwatch import __version__
from epochwatch.analysis.detectors import disk
from epochwatch.daemon.config import DaemonConfig
from epochwatch.daemon.limits import UidLimits
from epochwatch.daemon.owntraces import OwnTraces
from epochwatch.daemon.parents import PARENT_WAIT_SECONDS, DaemonParents, ParentLoader
from epochwatch.daemon.peer import Peer
from epochwatch.daemon.pidwatch import PidWatch, process_start_time
from epochwatch.daemon.quota import DiskBudget, RunMeter, TraceLimit
from epochwatch.daemon.runend import RunEnds, safely
from epochwatch.daemon.runsamplers import NvmlHub
from epochwatch.daemon.runwatch import RunWatches
from epochwatch.daemon.session import Record, Session
from epochwatch.daemon.store import SessionState, StateWriter, TraceFile, hash_token
from epochwatch.daemon.takeback import MARK_SECONDS, mark_of, read_tail, take_back
from epochwatch.trace import protocol as p

log = logging.getLogger("epochwatch.daemon")


class RunRegistry:
    def __init__(
        self,
        cfg: DaemonConfig,
        limits: UidLimits,
        hub: NvmlHub,
        *,
        on_change: Callable[[], None],
        on_end: Callable[[Session], None],
        on_attach: Callable[[Session], None],
        offload: Callable[[Callable[[], None]], object],
    ) -> None:
        self.cfg = cfg
        self.limits = limits
        self.sessions: dict[str, Session] = {}
        self.watches = RunWatches(cfg.limits.max_watches_per_run, self.sessions, limits.log)
        self._hub = hub
        self._traces = cfg.traces_dir
        self.budget = DiskBudget(cfg.limits, cfg.traces_dir)
        self._sessions_dir = cfg.sessions_dir
        self.states = StateWriter(cfg.sessions_dir)
        self._by_token: dict[str, Session] = {}
        self._runs_of: Counter[int] = Counter()  # sessions per uid
        self._pidwatches: dict[str, PidWatch] = {}
        self._on_change = on_change
        self._on_end = on_end
        self._on_attach = on_attach
        self._offload = offload
        self.parents = ParentLoader(cfg.traces_dir, self._parents_loaded)
        self.own_traces = OwnTraces(cfg.traces_dir)
        self._waiting: set[str] = set()  # runs whose analysis waits for a parent being read
        self._marked: dict[str, float] = {}  # run id -> when its mark was saved
        disk.MEASURE_HERE = False  # root never stats a path from a user's records
        self.ends = RunEnds(
            self.sessions,
            forget=self._forget,
            on_change=on_change,
            on_end=on_end,
            on_removed=lambda s: self.own_traces.remove(s.uid, s.trace_path.name),
        )
        # what the server and the connections call
        self.live = self.ends.live
        self.detach = self.ends.detach
        self.process_exited = self.ends.process_exited
        self.expire_unseen = self.ends.expire_unseen

    def reconfigure(self, cfg: DaemonConfig) -> None:
        """A reloaded config: new sampling settings reach the runs already attached."""
        self.cfg = cfg
        self.watches.max_per_run = cfg.limits.max_watches_per_run
        self.budget.reconfigure(cfg.limits)
        for session in self.sessions.values():
            session.sampling = cfg.sampling
            session.decimator.cfg = cfg.sampling

    # -- a run arrives ---------------------------------------------------------------------------

    def runs_of(self, uid: int) -> int:
        """Counted, not searched: a hostile uid's reconnect storm asks this at every hello."""
        return self._runs_of[uid]

    def attach(self, peer: Peer, hello: dict[str, Any]) -> Session | None:
        """A run's hello: a new run, or a resume with its token. Returns the run the peer now
        feeds, or None when refused (the peer has been told why)."""
        token = hello.get("token")
        if token is not None:
            return self._resume(peer, token)
        refused = self.limits.run_refused(peer.uid, self.runs_of(peer.uid), self.own_traces.count(peer.uid))
        if refused:
            self.limits.log.warning(peer.uid, "%s: new run refused: %s", _who(peer), refused)
            peer.fail("limit", refused)
            return None
        wanted = hello.get("run_id")
        wanted = wanted if isinstance(wanted, str) else "run"
        create_time = process_start_time(peer.pid)
        if peer.pid > 0 and create_time is None:
            self.limits.log.warning(peer.uid, "%s: the process is gone already; refused", _who(peer))
            peer.fail("refused", "the connecting process cannot be seen by the daemon")
            return None
        try:
            trace = TraceFile.create(self._traces, wanted[:200], uid=peer.uid, mode=self.cfg.trace_mode)
        except OSError as exc:
            self.limits.log.log(
                logging.ERROR, peer.uid, "%s: cannot create a trace in %s: %s", _who(peer), self._traces, exc
            )
            peer.fail("internal", "the daemon cannot create a trace file")
            return None
        trace.meter = RunMeter(self.budget, peer.uid)
        self.own_traces.add(peer.uid, trace.path.name)
        token = secrets.token_urlsafe(24)
        state = SessionState(
            run_id=trace.run_id,
            token_sha256=hash_token(token),
            uid=peer.uid,
            gid=peer.gid,
            pid=peer.pid,
            create_time=create_time or 0.0,
            started=time.time(),
        )
        self.states.save(state)
        session = self._new_session(state, trace)
        self._register(session)
        self._connect(session, peer)
        asked = f" (asked for {wanted[:80]!r})" if wanted != state.run_id else ""
        log.info("run %s attached: pid %d, uid %d%s", state.run_id, peer.pid, peer.uid, asked)
        peer.send(self._welcome(session, token, resumed=False))
        self._on_change()
        self._on_attach(session)
        return session

    def _resume(self, peer: Peer, token: Any) -> Session | None:
        session = self._by_token.get(hash_token(token)) if isinstance(token, str) else None
        if session is None or session.finished:
            self.limits.log.warning(
                peer.uid, "%s: resume with an unknown token; refused (it may start a new run)", _who(peer)
            )
            peer.fail("unknown_run", "this daemon does not know that run; start a new one")
            return None
        if session.uid != peer.uid or (session.pid > 0 and session.pid != peer.pid):
            self.limits.log.warning(
                peer.uid,
                "%s: resume of run %s refused: it belongs to pid %d uid %d",
                _who(peer),
                session.run_id,
                session.pid,
                session.uid,
            )
            peer.fail("refused", "that run belongs to another process")
            return None
        old = session.connection
        if old is not None and old is not peer:
            old.close()
        self._connect(session, peer)
        log.info("run %s resumed by pid %d at record %d", session.run_id, peer.pid, session.next_seq)
        peer.send(self._welcome(session, token, resumed=True))
        self._on_change()
        return session

    def _welcome(self, session: Session, token: str, *, resumed: bool) -> Record:
        return {
            "op": p.OP_WELCOME,
            "protocol": p.PROTOCOL_VERSION,
            "run_id": session.run_id,
            "token": token,
            "next_seq": session.next_seq,
            "resumed": resumed,
            "trace": str(session.trace_path),
            "daemon": __version__,
            # Where this run's restores look for their parents (owntraces.py).
            "own_traces": self.own_traces.names(session.uid, exclude=session.trace_path.name),
        }

    def _new_session(self, state: SessionState, trace: TraceFile, next_seq: int = 0) -> Session:
        return Session(
            state,
            trace,
            sampling=self.cfg.sampling,
            online=self.cfg.online_detection,
            hub=self._hub,
            next_seq=next_seq,
            parents=DaemonParents(self.parents, state.uid, state.gid),
            uid_log=self.limits.log,
        )

    def _register(self, session: Session) -> None:
        self.sessions[session.run_id] = session
        self._runs_of[session.uid] += 1
        self._by_token[session.state.token_sha256] = session
        if session.pid > 0:
            watch = PidWatch.open(
                session.pid, session.state.create_time, functools.partial(self.process_exited, session)
            )
            if watch is not None:
                self._pidwatches[session.run_id] = watch

    def _connect(self, session: Session, peer: Peer) -> None:
        session.connection = peer
        session.detached_since = None

    # -- records -----------------------------------------------------------------------------------

    def deliver(
        self,
        session: Session,
        peer: Peer,
        batch: Sequence[tuple[int, Record]],
        *,
        bye: bool = False,
        handover: int | None = None,
    ) -> None:
        """Accept a batch of the hook's records, acknowledge it, then analyze it.

        Each record is written in order (a `watch` record starts its watch first); one ack
        covers the batch; only then do the detectors run, so the ack never waits on them.
        A trace that cannot be written drops the connection with nothing acknowledged: the
        hook keeps its records and resends them when it resumes. With `bye` (the hook's
        last message came after the batch) the run ends instead: nobody reads an ack.
        With `handover` (the hook gave up waiting for this daemon and wrote the records from
        that seq on to its embedded trace) those records are dropped, already written ones
        cut back (Session.hand_over), and the run ends here: no record is in both traces.
        """
        if handover is not None:
            batch = [(seq, rec) for seq, rec in batch if seq < handover]
        first = session.next_seq
        creds = {"pid": peer.pid, "uid": peer.uid, "gid": peer.gid}
        for seq, rec in batch:
            if rec.get("type") == "watch":
                self.watches.ask(session, rec)
            elif rec.get("type") == "restore" and isinstance(rec.get("parent"), dict):
                session.parents.prefetch(rec["parent"].get("trace"))
            try:
                session.accept(seq, rec, creds, analyze=False)
            except OSError as exc:
                self._cannot_write(session, exc)
                code = exc.code if isinstance(exc, TraceLimit) else "disk_full"
                peer.fail(code, f"the daemon cannot write the trace: {session.write_problem}")
                return
        if session.write_problem is not None and session.next_seq > first:
            log.info("run %s: its trace is written again", session.run_id)
            session.write_problem = None
        if handover is not None:
            try:
                session.hand_over(handover)
            except OSError as exc:
                self._cannot_write(session, exc)
        if bye:
            self.ends.bye(session, peer)
            return
        if session.next_seq > first:
            peer.send({"op": p.OP_ACK, "seq": session.next_seq - 1})
        self._analyze(session)

    def _analyze(self, session: Session, *, waited: bool = False) -> None:
        """Run the detectors on what the run sent; a run whose restore named a parent still
        being read waits for it (PARENT_WAIT_SECONDS at most), its records queued."""
        if session.finished:
            return
        if session.parents.busy and not waited:
            if session.run_id not in self._waiting:
                self._waiting.add(session.run_id)
                asyncio.get_running_loop().call_later(PARENT_WAIT_SECONDS, self._waited, session)
            return
        self._waiting.discard(session.run_id)
        try:
            session.analyze_pending()
        except OSError as exc:
            self._cannot_write(session, exc)

    def _waited(self, session: Session) -> None:
        if session.run_id in self._waiting:
            self._analyze(session, waited=True)

    def _parents_loaded(self, uid: int) -> None:
        for run_id in list(self._waiting):
            session = self.sessions.get(run_id)
            if session is None:
                self._waiting.discard(run_id)
            elif session.uid == uid and not session.parents.busy:
                self._analyze(session)

    def _cannot_write(self, session: Session, exc: OSError) -> None:
        """A write to the run's trace failed (a full disk, a byte limit): said once per run
        and cause, in the log and, for a limit, in the trace itself. The hook is told on
        each refused batch (`disk_full`/`trace_limit`) and keeps its records; it retries
        with backoff, and falls back to its own file after its grace period."""
        why = exc.strerror or str(exc) or type(exc).__name__
        if session.write_problem == why:
            return
        session.write_problem = why
        log.error(
            "run %s: cannot write its trace (%s); the hook keeps its records and retries", session.run_id, why
        )
        if isinstance(exc, TraceLimit) and exc.code == "trace_limit":  # else no room for it either
            session.notice(f"the daemon stopped writing this trace: {why}", part="limits", essential=True)

    # -- samples (from the server's tick) --------------------------------------------------------

    def take_sample(self, session: Session, sample: Record, contention: Record | None) -> None:
        """One sample of the run's process, with the host's contention and its watched dirs."""
        session.contention = contention
        session.dirs = self.watches.totals(session)
        self.save_mark(session)
        try:
            session.on_sample(sample)
        except OSError as exc:
            self._cannot_write(session, exc)

    def stop_sampling(self, session: Session, why: str) -> None:
        """The run's process may not be looked at any more (runsamplers.ProcessChanged):
        no more samples, said once in the trace and the log; its exit is still seen
        (pidfd), its records still taken."""
        samplers, session.samplers = session.samplers, None
        if samplers is None:
            return
        self._offload(samplers.close)
        session.notice(f"stopped sampling pid {session.pid}: {why}", part="sampler")

    def close_all(self) -> int:
        """The daemon stops: write and close every trace, keep the runs resumable by the next
        daemon. Returns how many were connected."""
        attached = 0
        for session in list(self.sessions.values()):
            attached += session.connection is not None
            session.connection = None
            safely(session, session.close)
        for watch in self._pidwatches.values():
            watch.close()
        self._pidwatches.clear()
        self.watches.close()
        self.parents.close()
        self.states.close()
        return attached

    # -- restart: take back the runs of the previous daemon -------------------------------------

    def adopt(self) -> None:
        """Take back the runs of the previous daemon: each trace's mark and tail, read as its
        user (takeback.py), so a restart does not grow with what users wrote. And learn whose
        traces are there (owntraces.py)."""
        self.own_traces.scan()
        states, problems = SessionState.load_all(self._sessions_dir)
        for problem in problems:
            log.warning("ignoring unreadable run state %s", problem)
        for state in states:
            try:
                self._take_back(state)
            except Exception as exc:  # a user's trace is theirs to write: it costs their run, never the start
                log.error(
                    "run %s: cannot be taken back (%s: %s); forgetting it",
                    state.run_id,
                    type(exc).__name__,
                    str(exc)[:200],
                )
                SessionState.remove(self._sessions_dir, state.run_id)

    def _take_back(self, state: SessionState) -> None:
        """One run of the previous daemon: attached again if its process lives, else ended."""
        path = self._traces / f"{state.run_id}.jsonl"
        try:
            trace = TraceFile.reopen(path, state.uid, state.gid)
        except OSError as exc:
            log.warning("run %s: cannot reopen its trace (%s); forgetting it", state.run_id, exc)
            SessionState.remove(self._sessions_dir, state.run_id)
            return
        try:
            tail = read_tail(state, self._traces)
            trace.meter = RunMeter(
                self.budget, state.uid, min(tail.size, self.cfg.limits.max_trace_bytes_per_run)
            )
            session = self._new_session(state, trace, next_seq=tail.next_seq(state.mark))
            take_back(session, tail)
        except Exception:
            with contextlib.suppress(OSError):
                trace.close()
            if trace.meter is not None:
                trace.meter.close()
            raise
        if state.pid > 0 and process_start_time(state.pid) == state.create_time:
            self._register(session)
            log.info(
                "run %s taken back: pid %d, uid %d, waiting for its hook to resume at record %d",
                state.run_id,
                state.pid,
                state.uid,
                session.next_seq,
            )
            return
        session.finished = True
        try:
            session.write_vanished(daemon_was_down=True)
        except OSError as exc:
            log.error("run %s: cannot write its trace: %s", state.run_id, exc)
        safely(session, session.trace.close)
        trace.meter.close()  # its bytes no longer count against its uid
        SessionState.remove(self._sessions_dir, state.run_id)
        log.warning("run %s vanished while the daemon was down (pid %d)", state.run_id, state.pid)
        self._on_end(session)

    def save_mark(self, session: Session) -> None:
        """Every MARK_SECONDS while a run goes: its counters at its trace's size, so a
        restarted daemon reads only what came after (not fsync'ed: a lost mark costs a
        longer read of a bounded tail, never a wrong count)."""
        now = time.monotonic()
        if now - self._marked.get(session.run_id, 0.0) < MARK_SECONDS:
            return
        self._marked[session.run_id] = now
        mark = mark_of(session)
        if session.state.mark is not None and session.state.mark.get("offset") == mark["offset"]:
            return  # nothing written since
        session.state.mark = mark
        self.states.save(session.state, durable=False)

    def _forget(self, session: Session) -> None:
        """A finished run goes: its trace, meter, samplers, watches, pid watch, resume state."""
        safely(session, session.trace.close)
        if session.trace.meter is not None:
            session.trace.meter.close()
        samplers, session.samplers = session.samplers, None
        if samplers is not None:
            self._offload(samplers.close)
        self.watches.release(session)
        watch = self._pidwatches.pop(session.run_id, None)
        if watch is not None:
            watch.close()
        self.states.remove(session.run_id)
        self._marked.pop(session.run_id, None)
        if self.sessions.pop(session.run_id, None) is not None:
            self._runs_of[session.uid] -= 1
        self._by_token.pop(session.state.token_sha256, None)

    # -- status ----------------------------------------------------------------------------------

    def status_for(self, uid: int) -> list[Record]:
        """Runs a uid may see: its own; root sees all. An entry that cannot be encoded stands
        alone in its failure: one run's numbers never blind root to all the others."""
        out = []
        for s in self.sessions.values():
            if uid == 0 or s.uid == uid:
                entry = s.summary()
                try:
                    p.encode(entry)
                except (TypeError, orjson.JSONEncodeError):
                    entry = {
                        "run_id": s.run_id,
                        "uid": s.uid,
                        "pid": s.pid,
                        "error": "its status cannot be encoded",
                    }
                out.append(entry)
        return out

    def describe(self) -> str:
        """One line for systemd's status."""
        attached = sum(1 for s in self.sessions.values() if s.connection is not None)
        uids = len({s.uid for s in self.sessions.values()})
        findings = sum(len(s.findings) for s in self.sessions.values())
        return f"{len(self.sessions)} runs ({attached} connected) from {uids} users; {findings} findings"


def _who(peer: Peer) -> str:
    """A peer that feeds no run yet, for log lines."""
    return f"client pid {peer.pid} uid {peer.uid}"
