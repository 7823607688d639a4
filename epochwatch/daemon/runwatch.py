"""The directories each run asked to watch: the per-run policy over the one shared observer.

A hook's `watch` record names a directory and its role. Who may ask is watch.py's
`refuse_watch`; here: at most `max_per_run` directories a run, a directory that does not
exist yet is kept pending and watched once it does, and the record is annotated with what
the daemon did (`daemon_watch`: the resolved path, "pending", or "refused: why").
"""

from __future__ import annotations

import logging

from epochwatch.daemon.session import Record, Session
from epochwatch.daemon.watch import MISSING, SharedWatcher, refuse_watch
from epochwatch.trace.schema import ROLES

log = logging.getLogger("epochwatch.daemon")


class RunWatches:
    def __init__(self, max_per_run: int) -> None:
        self.max_per_run = max_per_run  # the registry updates it when the config is reloaded
        self.watcher = SharedWatcher()

    def ask(self, session: Session, rec: Record) -> None:
        """A `watch` record from the run's hook: watch, keep pending, or refuse (noted in rec)."""
        raw, role = rec.get("path"), rec.get("role")
        role = role if role in ROLES else "user"
        why, real = refuse_watch(raw, session.uid, session.state.gid)
        if why == MISSING and isinstance(raw, str):
            if len(session.pending_watches) < self.max_per_run:
                session.pending_watches[raw] = role
                log.info("run %s: will watch %s once it exists", session.run_id, raw[:300])
                rec["daemon_watch"] = "pending"
                return
            why = "too many directories waiting to exist"
        if why is None:
            why = self._start(session, real, role)
        if why is not None:
            log.warning("run %s: not watching %s: %s", session.run_id, str(raw)[:300], why)
            rec["daemon_watch"] = f"refused: {why}"
        else:
            rec["daemon_watch"] = real

    def _start(self, session: Session, real: str, role: str) -> str | None:
        if real in session.watched:
            return None
        if len(session.watched) >= self.max_per_run:
            return f"the run already watches {len(session.watched)} directories, the limit"
        why = self.watcher.watch(real, role, session.run_id)
        if why is None:
            session.watched[real] = role
        return why

    def check_pending(self, session: Session) -> None:
        """Directories that did not exist when asked for: watch them once they do."""
        for raw, role in list(session.pending_watches.items()):
            why, real = refuse_watch(raw, session.uid, session.state.gid)
            if why == MISSING:
                continue
            del session.pending_watches[raw]
            if why is None:
                why = self._start(session, real, role)
            if why is not None:
                log.warning("run %s: not watching %s: %s", session.run_id, raw[:300], why)
            else:
                log.info("run %s: watching %s (%s)", session.run_id, real, role)

    def totals(self, session: Session) -> Record:
        """The sizes of the run's watched directories, for its samples."""
        return self.watcher.totals(list(session.watched))

    def release(self, session: Session) -> None:
        """The run ended: its watches go (a directory another run watches stays watched)."""
        for path in session.watched:
            self.watcher.unwatch(path, session.run_id)
        session.watched.clear()
        session.pending_watches.clear()

    def close(self) -> None:
        self.watcher.close()
