"""The daemon: a Unix socket, the attached runs, the 1 Hz tick, signals, systemd.

One asyncio loop owns all state. Sampling (psutil, NVML, /proc) runs on one worker
thread so a slow driver call never stalls the socket; its results come back to the loop.
Process exits are seen through pidfds (instantly) with the 1 Hz sampler as a fallback
(a sample of a gone process raises NoSuchProcess).

Signals: SIGTERM/SIGINT stop (read what is already sent, write the open sample windows,
close every trace, exit 0: runs stay resumable by the next daemon); SIGHUP reloads the
config file.

With `metrics_port` set, Prometheus scrapes are served on the same loop (metrics_http), and
the collector (metrics) reads the sessions when scraped: no thread, no lock, no cost between
scrapes. Both modules (and prometheus_client) are imported only when metrics are on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import grp
import logging
import os
import resource
import secrets
import signal
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from epochwatch import __version__
from epochwatch.daemon import protocol as p
from epochwatch.daemon.config import RESTART_ONLY, ConfigError, DaemonConfig, differences, load_config
from epochwatch.daemon.connection import Connection
from epochwatch.daemon.contention import ContentionScanner
from epochwatch.daemon.limits import UidLimits
from epochwatch.daemon.notify import Notifier, watchdog_interval
from epochwatch.daemon.pidwatch import PidWatch, process_start_time
from epochwatch.daemon.runsamplers import NvmlHub
from epochwatch.daemon.session import Session
from epochwatch.daemon.store import SessionState, TraceFile, hash_token, last_seq, prepare_dirs
from epochwatch.daemon.watch import MISSING, ROLES, SharedWatcher, refuse_watch

if TYPE_CHECKING:
    from epochwatch.daemon.metrics import DaemonCollector
    from epochwatch.daemon.metrics_http import MetricsServer

log = logging.getLogger("epochwatch.daemon")

# After the process is gone but its connection is still open, wait this long for the
# connection to close (and its last records to be read) before writing run_end.
EXIT_DRAIN_SECONDS = 2.0
# A run whose process the daemon cannot see (another pid namespace) and that disconnected
# without run_end is declared vanished after this long without a resume.
UNSEEN_DETACH_SECONDS = 60.0
STOP_DRAIN_SECONDS = 0.3


class StartError(Exception):
    """The daemon cannot start; one line for the operator."""


class Daemon:
    def __init__(
        self,
        cfg: DaemonConfig,
        *,
        config_path: str | None = None,
        flags: dict[str, Any] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.flags = flags or {}
        self.notifier = notifier or Notifier.from_env()
        self.limits = UidLimits(cfg.limits)
        self.sessions: dict[str, Session] = {}
        self.by_token: dict[str, Session] = {}
        self.pidwatches: dict[str, PidWatch] = {}
        self.watcher = SharedWatcher()
        self.connections: set[Connection] = set()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epochwatch-sampler")
        self._nvml = NvmlHub()
        self._contention = ContentionScanner(self._nvml.gpu_processes)
        self._contention_due = 0.0
        self._stop: asyncio.Event | None = None
        self._server: asyncio.AbstractServer | None = None
        self._traces = cfg.traces_dir
        self._sessions_dir = cfg.sessions_dir
        self._status_text = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self.metrics: DaemonCollector | None = None  # with metrics_port set
        self._metrics_server: MetricsServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def run(self) -> int:
        return asyncio.run(self._main())

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        _raise_fd_limit()
        try:
            self._traces, self._sessions_dir = prepare_dirs(Path(self.cfg.state_dir))
        except OSError as exc:
            raise StartError(
                f"cannot use state directory {self.cfg.state_dir}: {exc.strerror or exc}"
            ) from None
        # Claim the socket first (refusing if another daemon is live), take the previous
        # daemon's runs back, and only then accept: a resuming hook finds its run.
        self._server = await self._listen(loop)
        try:
            await self._start_metrics()
        except StartError:
            self._server.close()
            with contextlib.suppress(OSError):
                os.unlink(self.cfg.socket)
            raise
        self._adopt()
        await self._server.start_serving()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        tick = asyncio.create_task(self._tick_loop(), name="tick")
        dog = asyncio.create_task(self._watchdog_loop(), name="watchdog")
        log.info(
            "epochwatch %s daemon listening on %s (mode %o), traces in %s",
            __version__,
            self.cfg.socket,
            self.cfg.socket_mode,
            self._traces,
        )
        self.notifier.ready(self._status())
        try:
            await self._stop.wait()
        finally:
            self.notifier.stopping()
            tick.cancel()
            dog.cancel()
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        return 0

    async def _listen(self, loop: asyncio.AbstractEventLoop) -> asyncio.AbstractServer:
        path = self.cfg.socket
        _clear_stale_socket(path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            server = await loop.create_unix_server(
                lambda: self._new_connection(), path, backlog=1024, start_serving=False
            )
        except OSError as exc:
            raise StartError(f"cannot listen on {path}: {exc.strerror or exc}") from None
        os.chmod(path, self.cfg.socket_mode)
        if self.cfg.socket_group:
            try:
                os.chown(path, -1, grp.getgrnam(self.cfg.socket_group).gr_gid)
            except (KeyError, OSError) as exc:
                server.close()
                raise StartError(f"cannot give {path} to group {self.cfg.socket_group!r}: {exc}") from None
        return server

    async def _start_metrics(self) -> None:
        """Serve Prometheus metrics when metrics_port is set (off by default; docs/metrics.md)."""
        if not self.cfg.metrics_port:
            return
        from epochwatch.daemon.metrics import DaemonCollector, registry_for
        from epochwatch.daemon.metrics_http import MetricsServer, bind_problem, read_token

        token = ""
        if self.cfg.metrics_token_file:
            try:
                token = read_token(self.cfg.metrics_token_file)
            except (OSError, ValueError) as exc:
                raise StartError(f"metrics_token_file {self.cfg.metrics_token_file}: {exc}") from None
        collector = DaemonCollector(lambda: self.sessions.values(), lambda: len(self.connections))
        address, port = self.cfg.metrics_address, self.cfg.metrics_port
        server = MetricsServer(registry_for(collector), address, port, token=token)
        try:
            await server.start()
        except OSError as exc:
            raise StartError(bind_problem(address, port, exc)) from None
        self.metrics, self._metrics_server = collector, server
        log.info("serving Prometheus metrics at %s", server.url)

    def _new_connection(self) -> Connection:
        conn = Connection(self)
        self.connections.add(conn)
        return conn

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._metrics_server is not None:
            self._metrics_server.close()
        # Let what clients already sent be read: it is written, not lost.
        await asyncio.sleep(STOP_DRAIN_SECONDS)
        attached = 0
        for session in list(self.sessions.values()):
            attached += session.connection is not None
            session.connection = None
            self._safely(session, session.close)
        for conn in list(self.connections):
            conn.session = None
            conn.close()
        for watch in self.pidwatches.values():
            watch.close()
        self.pidwatches.clear()
        self.watcher.close()
        self._pool.submit(self._nvml.close)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(OSError):
            os.unlink(self.cfg.socket)
        log.info(
            "stopped: %d runs left resumable (%d were connected); traces flushed",
            len(self.sessions),
            attached,
        )
        self.notifier.close()

    # -- config -------------------------------------------------------------------------------

    def reload(self) -> None:
        self.notifier.reloading()
        try:
            new = load_config(
                self.config_path,
                socket=self.flags.get("socket"),
                state_dir=self.flags.get("state_dir"),
                metrics_port=self.flags.get("metrics_port"),
                metrics_address=self.flags.get("metrics_address"),
            )
        except ConfigError as exc:
            log.error("config reload failed, keeping the running config: %s", exc)
            self.notifier.ready(self._status())
            return
        kept = {k: getattr(self.cfg, k) for k in RESTART_ONLY if getattr(new, k) != getattr(self.cfg, k)}
        if kept:
            log.warning(
                "config: %s only change at a restart; keeping the running values", ", ".join(sorted(kept))
            )
            new = dataclasses.replace(new, **kept)
        changes = differences(self.cfg, new)
        self.cfg = new
        self.limits.reconfigure(new.limits)
        for session in self.sessions.values():
            session.sampling = new.sampling
            session.decimator.cfg = new.sampling
        logging.getLogger("epochwatch").setLevel(new.log_level.upper())
        source = self.config_path or "defaults"
        log.info("config reloaded from %s: %s", source, "; ".join(changes) if changes else "no changes")
        self.notifier.ready(self._status())

    # -- runs -----------------------------------------------------------------------------------

    def runs_of(self, uid: int) -> int:
        return sum(1 for s in self.sessions.values() if s.uid == uid)

    def attach(self, conn: Connection, hello: dict[str, Any]) -> None:
        token = hello.get("token")
        if token is not None:
            self._resume(conn, token)
            return
        refused = self.limits.run_refused(conn.uid, self.runs_of(conn.uid))
        if refused:
            log.warning("%s: new run refused: %s", conn.who(), refused)
            conn.fail("limit", refused)
            return
        wanted = hello.get("run_id")
        wanted = wanted if isinstance(wanted, str) else "run"
        create_time = process_start_time(conn.pid)
        if conn.pid > 0 and create_time is None:
            log.warning("%s: the process is gone already; refused", conn.who())
            conn.fail("refused", "the connecting process cannot be seen by the daemon")
            return
        try:
            trace = TraceFile.create(self._traces, wanted[:200], uid=conn.uid, mode=self.cfg.trace_mode)
        except OSError as exc:
            log.error("%s: cannot create a trace in %s: %s", conn.who(), self._traces, exc)
            conn.fail("internal", "the daemon cannot create a trace file")
            return
        token = secrets.token_urlsafe(24)
        state = SessionState(
            run_id=trace.run_id,
            token_sha256=hash_token(token),
            uid=conn.uid,
            gid=conn.gid,
            pid=conn.pid,
            create_time=create_time or 0.0,
            started=time.time(),
            script=_script_of(conn.pid),
        )
        try:
            state.save(self._sessions_dir)
        except OSError as exc:
            log.warning(
                "run %s: cannot save its resume state (%s); it cannot survive a daemon restart",
                state.run_id,
                exc,
            )
        session = Session(
            state, trace, sampling=self.cfg.sampling, online=self.cfg.online_detection, hub=self._nvml
        )
        self._register(session)
        self._connect(session, conn)
        asked = f" (asked for {wanted[:80]!r})" if wanted != state.run_id else ""
        log.info(
            "run %s attached: pid %d, uid %d, %s%s",
            state.run_id,
            conn.pid,
            conn.uid,
            state.script or "unknown script",
            asked,
        )
        conn.send(self._welcome(session, token, resumed=False))
        self._update_status()
        task = asyncio.get_running_loop().create_task(self._sample_new(session))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _resume(self, conn: Connection, token: Any) -> None:
        session = self.by_token.get(hash_token(token)) if isinstance(token, str) else None
        if session is None or session.finished:
            log.warning("%s: resume with an unknown token; refused (it may start a new run)", conn.who())
            conn.fail("unknown_run", "this daemon does not know that run; start a new one")
            return
        if session.uid != conn.uid or (session.pid > 0 and session.pid != conn.pid):
            log.warning(
                "%s: resume of run %s refused: it belongs to pid %d uid %d",
                conn.who(),
                session.run_id,
                session.pid,
                session.uid,
            )
            conn.fail("refused", "that run belongs to another process")
            return
        old = session.connection
        if old is not None and old is not conn:
            old.session = None
            old.close()
        self._connect(session, conn)
        log.info("run %s resumed by pid %d at record %d", session.run_id, conn.pid, session.next_seq)
        conn.send(self._welcome(session, token, resumed=True))
        self._update_status()

    def _welcome(self, session: Session, token: str, *, resumed: bool) -> dict[str, Any]:
        return {
            "op": p.OP_WELCOME,
            "protocol": p.PROTOCOL_VERSION,
            "run_id": session.run_id,
            "token": token,
            "next_seq": session.next_seq,
            "resumed": resumed,
            "trace": str(session.trace_path),
            "daemon": __version__,
        }

    def _register(self, session: Session) -> None:
        self.sessions[session.run_id] = session
        self.by_token[session.state.token_sha256] = session
        if session.pid > 0:
            watch = PidWatch.open(
                session.pid, session.state.create_time, functools.partial(self.process_exited, session)
            )
            if watch is not None:
                self.pidwatches[session.run_id] = watch

    def _connect(self, session: Session, conn: Connection) -> None:
        conn.session = session
        conn._acked = session.next_seq - 1
        session.connection = conn
        session.detached_since = None

    def record(self, session: Session, conn: Connection, seq: int, rec: dict[str, Any]) -> None:
        if rec.get("type") == "watch":
            self._watch(session, rec)
        peer = {"pid": conn.pid, "uid": conn.uid, "gid": conn.gid}
        try:
            session.accept(seq, rec, peer, analyze=False)  # the connection analyzes after its ack
        except OSError as exc:
            log.error(
                "run %s: cannot write its trace (%s); dropping the connection so the hook keeps its records",
                session.run_id,
                exc.strerror or exc,
            )
            conn.fail("internal", "the daemon cannot write the trace")

    def analyze(self, session: Session) -> None:
        """Run the detectors on what a connection just delivered (after its ack went out)."""
        try:
            session.analyze_pending()
        except OSError as exc:
            log.error("run %s: cannot write a finding: %s", session.run_id, exc)

    def _watch(self, session: Session, rec: dict[str, Any]) -> None:
        raw, role = rec.get("path"), rec.get("role")
        role = role if role in ROLES else "user"
        why, real = refuse_watch(raw, session.uid, session.state.gid)
        if why == MISSING and isinstance(raw, str):
            if len(session.pending_watches) < self.cfg.limits.max_watches_per_run:
                session.pending_watches[raw] = role
                log.info("run %s: will watch %s once it exists", session.run_id, raw[:300])
                rec["daemon_watch"] = "pending"
                return
            why = "too many directories waiting to exist"
        if why is None:
            why = self._start_watch(session, real, role)
        if why is not None:
            log.warning("run %s: not watching %s: %s", session.run_id, str(raw)[:300], why)
            rec["daemon_watch"] = f"refused: {why}"
        else:
            rec["daemon_watch"] = real

    def _start_watch(self, session: Session, real: str, role: str) -> str | None:
        if real in session.watched:
            return None
        if len(session.watched) >= self.cfg.limits.max_watches_per_run:
            return f"the run already watches {len(session.watched)} directories, the limit"
        why = self.watcher.watch(real, role, session.run_id)
        if why is None:
            session.watched[real] = role
        return why

    def _check_pending_watches(self, session: Session) -> None:
        """Directories that did not exist when asked for: watch them once they do."""
        for raw, role in list(session.pending_watches.items()):
            why, real = refuse_watch(raw, session.uid, session.state.gid)
            if why == MISSING:
                continue
            del session.pending_watches[raw]
            if why is None:
                why = self._start_watch(session, real, role)
            if why is not None:
                log.warning("run %s: not watching %s: %s", session.run_id, raw[:300], why)
            else:
                log.info("run %s: watching %s (%s)", session.run_id, real, role)

    def bye(self, session: Session, conn: Connection) -> None:
        conn.session = None
        conn.close()
        session.connection = None
        if session.ended is None:
            log.info("run %s: its hook said goodbye without run_end", session.run_id)
        self._finish(session)

    def detach(self, session: Session, conn: Connection) -> None:
        """The connection of a run closed (connection_lost)."""
        if session.connection is conn:
            session.connection = None
            session.detached_since = time.monotonic()
        if session.finished:
            return
        if session.ended is None and not session.exited and session.pid > 0:
            # Killed processes close their sockets: look before waiting for a resume.
            session.exited = process_start_time(session.pid) != session.state.create_time
        if session.ended is not None or session.exited:
            self._finish(session)
        else:
            log.info("run %s: connection lost without run_end; waiting for it to come back", session.run_id)
            self._update_status()

    def process_exited(self, session: Session) -> None:
        """The run's process is gone (pidfd or a failed sample)."""
        if session.exited or session.finished:
            return
        session.exited = True
        if session.connection is None:
            self._finish(session)
            return
        # Its socket closes with it; read what it sent before deciding how it ended.
        loop = asyncio.get_running_loop()
        loop.call_later(EXIT_DRAIN_SECONDS, self._exit_drained, session)

    def _exit_drained(self, session: Session) -> None:
        if not session.finished:
            conn = session.connection
            if conn is not None:
                conn.session = None
                conn.close()
                session.connection = None
            self._finish(session)

    def _finish(self, session: Session) -> None:
        """End a run: run_end if the hook did not write one, close, forget."""
        if session.finished:
            return
        session.finished = True
        ended = session.ended
        try:
            session.analyze_pending()
            session.flush()
            if ended is None and (session.run_start is not None or session.trace.bytes_written):
                session.write_vanished()
        except OSError as exc:
            log.error("run %s: cannot write its trace: %s", session.run_id, exc)
        empty = session.run_start is None and session.trace.bytes_written == 0
        self._forget(session)
        if empty:  # it left before sending anything: no trace worth keeping
            with contextlib.suppress(OSError):
                session.trace_path.unlink()
            log.info("run %s left before its first record; no trace kept", session.run_id)
            self._update_status()
            return
        if self.metrics is not None:
            self.metrics.run_ended(session)
        if ended is None:
            hint = session.oom_hint()
            log.warning(
                "run %s vanished: pid %d exited without run_end after %d epochs%s",
                session.run_id,
                session.pid,
                session.epochs,
                f"; {hint}" if hint else "",
            )
        else:
            log.info("run %s ended: %s after %d epochs", session.run_id, ended, session.epochs)
        self._update_status()

    def _forget(self, session: Session) -> None:
        self._safely(session, session.trace.close)
        if session.samplers is not None:
            samplers = session.samplers
            session.samplers = None
            self._pool.submit(samplers.close)
        for path in session.watched:
            self.watcher.unwatch(path, session.run_id)
        session.watched.clear()
        session.pending_watches.clear()
        watch = self.pidwatches.pop(session.run_id, None)
        if watch is not None:
            watch.close()
        SessionState.remove(self._sessions_dir, session.run_id)
        self.sessions.pop(session.run_id, None)
        self.by_token.pop(session.state.token_sha256, None)

    def _safely(self, session: Session, fn: Any) -> None:
        try:
            fn()
        except Exception as exc:
            log.error("run %s: %s: %s", session.run_id, type(exc).__name__, exc)

    # -- restart: take back the runs of the previous daemon -------------------------------------

    def _adopt(self) -> None:
        states, problems = SessionState.load_all(self._sessions_dir)
        for problem in problems:
            log.warning("ignoring unreadable run state %s", problem)
        for state in states:
            path = self._traces / f"{state.run_id}.jsonl"
            try:
                trace = TraceFile.reopen(path)
            except OSError as exc:
                log.warning("run %s: cannot reopen its trace (%s); forgetting it", state.run_id, exc)
                SessionState.remove(self._sessions_dir, state.run_id)
                continue
            session = Session(
                state,
                trace,
                sampling=self.cfg.sampling,
                online=self.cfg.online_detection,
                hub=self._nvml,
                next_seq=last_seq(path) + 1,
            )
            session.restore_from_trace()
            alive = state.pid > 0 and process_start_time(state.pid) == state.create_time
            if not alive:
                session.finished = True
                try:
                    session.write_vanished(daemon_was_down=True)
                except OSError as exc:
                    log.error("run %s: cannot write its trace: %s", state.run_id, exc)
                self._safely(session, session.trace.close)
                SessionState.remove(self._sessions_dir, state.run_id)
                log.warning("run %s vanished while the daemon was down (pid %d)", state.run_id, state.pid)
                if self.metrics is not None:
                    self.metrics.run_ended(session)
                continue
            self._register(session)
            log.info(
                "run %s taken back: pid %d, uid %d, waiting for its hook to resume at record %d",
                state.run_id,
                state.pid,
                state.uid,
                session.next_seq,
            )

    # -- sampling -------------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            interval = self.cfg.sampling.interval_seconds
            deadline = loop.time() + interval
            try:
                await self._tick(loop)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sampling tick failed")
            await asyncio.sleep(max(0.05, deadline - loop.time()))

    async def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        sessions = [s for s in self.sessions.values() if not s.finished]
        self._check_unseen(sessions, now)
        scan = now >= self._contention_due and any(s.samplers is not None for s in sessions)
        await self._sample(loop, sessions, scan)
        if scan:
            # A priming scan (nothing recent to compare with) is followed by a real one soon.
            primed = self._contention.latest is None
            self._contention_due = now + (1.0 if primed else self.cfg.sampling.contention_interval_seconds)

    async def _sample_new(self, session: Session) -> None:
        """A first sample right at attach, so even the first epoch has peaks."""
        try:
            await self._sample(asyncio.get_running_loop(), [session], scan=False)
        except Exception:
            log.exception("run %s: first sample failed", session.run_id)

    async def _sample(self, loop: asyncio.AbstractEventLoop, sessions: list[Session], scan: bool) -> None:
        targets = [(s, s.samplers) for s in sessions if s.samplers is not None and not s.exited]
        if not targets:
            return
        results = await loop.run_in_executor(
            self._pool, _sample_all, [t[1] for t in targets], self._contention if scan else None
        )
        top = self.cfg.sampling.contention_top
        for (session, _), (sample, gone) in zip(targets, results, strict=True):
            if session.finished:
                continue
            if gone:
                self.process_exited(session)
                continue
            if sample is None:
                continue
            session.contention = self._contention.for_run(session.pid, top)
            if session.pending_watches:
                self._check_pending_watches(session)
            session.dirs = self.watcher.totals(list(session.watched))
            try:
                session.on_sample(sample)
            except OSError as exc:
                log.error("run %s: cannot write a sample: %s", session.run_id, exc)

    def _check_unseen(self, sessions: list[Session], now: float) -> None:
        for s in sessions:
            unseen = s.pid <= 0 and s.connection is None and s.detached_since is not None
            if unseen and now - (s.detached_since or now) > UNSEEN_DETACH_SECONDS:
                self._finish(s)

    # -- status and systemd ----------------------------------------------------------------------

    def status_for(self, uid: int) -> list[dict[str, Any]]:
        """Runs a uid may see: its own; root sees all."""
        return [s.summary() for s in self.sessions.values() if uid == 0 or s.uid == uid]

    def _status(self) -> str:
        attached = sum(1 for s in self.sessions.values() if s.connection is not None)
        uids = len({s.uid for s in self.sessions.values()})
        findings = sum(len(s.findings) for s in self.sessions.values())
        return f"{len(self.sessions)} runs ({attached} connected) from {uids} users; {findings} findings"

    def _update_status(self) -> None:
        text = self._status()
        if text != self._status_text:
            self._status_text = text
            self.notifier.status(text)

    async def _watchdog_loop(self) -> None:
        interval = watchdog_interval()
        if interval is None:
            return
        while True:
            self.notifier.watchdog()
            self._update_status()
            await asyncio.sleep(interval)


def _sample_all(
    samplers: list[Any], contention: ContentionScanner | None
) -> list[tuple[dict[str, Any] | None, bool]]:
    """On the sampling thread: one sample per run, (sample, gone); and the contention scan."""
    import psutil

    if contention is not None:
        try:
            contention.scan(max_age=60.0)
        except Exception as exc:
            log.warning("contention scan failed: %s", exc)
    out: list[tuple[dict[str, Any] | None, bool]] = []
    for sampler in samplers:
        try:
            out.append((sampler.sample(), False))
        except psutil.NoSuchProcess:
            out.append((None, True))
        except Exception as exc:
            log.warning("run %s: sample failed: %s: %s", sampler.run_id, type(exc).__name__, exc)
            out.append((None, False))
    return out


def _script_of(pid: int) -> str:
    """The script a process runs, from its command line (for logs and status until run_start)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return ""
    for arg in argv[1:]:
        if not arg.startswith("-"):
            return arg[:300]
    return argv[0][:300] if argv else ""


def _clear_stale_socket(path: str) -> None:
    """Remove a socket left by a killed daemon; refuse to take over a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise StartError(f"{path} exists and is not a socket; remove it or choose another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listening: left over
        return
    finally:
        probe.close()
    raise StartError(f"another daemon is listening on {path}")


def _raise_fd_limit() -> None:
    """Every attached run holds a connection and a trace file: allow plenty."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = hard if hard != resource.RLIM_INFINITY else 65536
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 65536), hard))
    except (ValueError, OSError):
        pass
