"""How a run ends, for the registry (registry.py): the hook's goodbye, a lost connection,
the process's exit (with a short drain of what it sent), a run the daemon cannot see gone
quiet; then run_end when the hook wrote none, and the run is closed and forgotten.

The registry holds a `RunEnds` and hands it what it needs: the runs, how to forget one
(the registry's bookkeeping: tokens, pid watches, watches, resume state), and the
callbacks for a changed status and an ended run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from epochwatch.daemon.peer import Peer
from epochwatch.daemon.pidwatch import process_start_time
from epochwatch.daemon.session import Session

log = logging.getLogger("epochwatch.daemon")

# After the process is gone but its connection is still open, wait this long for the
# connection to close (and its last records to be read) before writing run_end.
EXIT_DRAIN_SECONDS = 2.0
# A run whose process the daemon cannot see (another pid namespace) and that disconnected
# without run_end is declared vanished after this long without a resume.
UNSEEN_DETACH_SECONDS = 60.0


class RunEnds:
    """The ends of runs (see the module docstring)."""

    def __init__(
        self,
        sessions: dict[str, Session],
        *,
        forget: Callable[[Session], None],
        on_change: Callable[[], None],
        on_end: Callable[[Session], None],
        on_removed: Callable[[Session], None] = lambda _session: None,
    ) -> None:
        self.sessions = sessions
        self._forget = forget
        self._on_removed = on_removed  # its trace file is gone (owntraces.py must not name it)
        self._on_change = on_change
        self._on_end = on_end

    def live(self) -> list[Session]:
        return [s for s in self.sessions.values() if not s.finished]

    def bye(self, session: Session, peer: Peer) -> None:
        peer.close()
        session.connection = None
        if session.ended is None:
            log.info("run %s: its hook said goodbye without run_end", session.run_id)
        self._finish(session)

    def detach(self, session: Session, peer: Peer) -> None:
        """The connection of a run closed (connection_lost)."""
        if session.connection is peer:
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
            self._on_change()

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
            peer = session.connection
            if peer is not None:
                peer.close()
                session.connection = None
            self._finish(session)

    def expire_unseen(self, now: float) -> None:
        """Runs whose process the daemon cannot see, gone quiet too long: vanished."""
        for s in self.live():
            unseen = s.pid <= 0 and s.connection is None and s.detached_since is not None
            if unseen and now - (s.detached_since or now) > UNSEEN_DETACH_SECONDS:
                self._finish(s)

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
                self._on_removed(session)
            log.info("run %s left before its first record; no trace kept", session.run_id)
            self._on_change()
            return
        self._on_end(session)
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
        self._on_change()


def safely(session: Session, fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception as exc:
        log.error("run %s: %s: %s", session.run_id, type(exc).__name__, exc)
