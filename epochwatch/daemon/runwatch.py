"""The directories each run asked to watch: the daemon's policy, the run's worker's walk.

A hook's `watch` record names a directory and its role. The daemon only looks at the
request (watch.py's `refuse_request`: no file-system access), counts it against
`max_per_run` and MAX_WATCHES_PER_UID, and hands it to the worker of the run's (uid, gid)
(workers.py, userworker.py), which resolves, checks and walks it with the run's rights.
The record is annotated `daemon_watch`: "asked", or "refused: why" when the daemon
refused it without looking; what the worker refuses comes as a `notice` (`part: "dirs"`).

The worker's answers are hostile input: each is taken only for a run of that worker's
(uid, gid), a path that run asked for, and totals only for roots the run watches.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from epochwatch.daemon.lograte import UidLog
from epochwatch.daemon.session import Record, Session
from epochwatch.daemon.watch import refuse_request
from epochwatch.daemon.workers import UidWorker, Workers
from epochwatch.trace.schema import ROLES

log = logging.getLogger("epochwatch.daemon")

# Directories one uid's runs may watch together (asked, pending or live).
MAX_WATCHES_PER_UID = 64
# Totals are asked of a worker at most this often (every run's sample reads the latest).
TOTALS_EVERY_SECONDS = 0.5


class RunWatches:
    def __init__(self, max_per_run: int, sessions: dict[str, Session], uid_log: UidLog) -> None:
        self.max_per_run = max_per_run  # the registry updates it when the config is reloaded
        self._sessions = sessions  # the registry's runs, by run id
        self._log = uid_log  # lines a run's requests cause, rate-limited by uid
        self.workers = Workers(self._on_message, self._on_gone)
        self._dirs: dict[str, Record] = {}  # run id -> its latest totals from its worker
        self._asked_at: dict[tuple[int, int], float] = {}

    # -- requests ----------------------------------------------------------------------------

    def ask(self, session: Session, rec: Record) -> None:
        """A `watch` record from the run's hook: asked of its worker, or refused (noted in rec)."""
        raw, role = rec.get("path"), rec.get("role")
        why = refuse_request(raw, role)
        if why is None and raw not in session.pending_watches and raw not in session.watched:
            why = self._room(session) or self._send(session, str(raw), role if role in ROLES else "user")
        if why is not None:
            self._log.warning(session.uid, "run %s: not watching %s: %s", session.run_id, str(raw)[:300], why)
        rec["daemon_watch"] = "asked" if why is None else f"refused: {why}"

    def _room(self, session: Session) -> str | None:
        held = len(session.watched) + len(session.pending_watches)
        if held >= self.max_per_run:
            return f"the run already watches {held} directories, the limit"
        of_uid = sum(len(s.watched) + len(s.pending_watches) for s in self._of(session.uid))
        if of_uid >= MAX_WATCHES_PER_UID:
            return f"the runs of uid {session.uid} already watch {of_uid} directories, the limit"
        return None

    def _send(self, session: Session, raw: str, role: str) -> str | None:
        worker, why = self.workers.get(session.uid, session.state.gid)
        if worker is None:
            return why
        msg = {"op": "watch", "owner": session.run_id, "path": raw, "role": role}
        if not worker.send(msg):
            return "its worker did not take the request"
        session.pending_watches[raw] = role
        return None

    def _of(self, uid: int, gid: int | None = None) -> list[Session]:
        return [
            s
            for s in self._sessions.values()
            if s.uid == uid and (gid is None or s.state.gid == gid) and not s.finished
        ]

    # -- answers (hostile input) ---------------------------------------------------------------

    def _on_message(self, worker: UidWorker, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "watch":
            self._answered(worker, msg)
        elif op == "totals":
            self._took_totals(worker, msg.get("dirs"), msg.get("lost"))

    def _run_of(self, worker: UidWorker, owner: Any) -> Session | None:
        session = self._sessions.get(owner) if isinstance(owner, str) else None
        if session is None or (session.uid, session.state.gid) != worker.key or session.finished:
            return None
        return session

    def _answered(self, worker: UidWorker, msg: dict[str, Any]) -> None:
        session = self._run_of(worker, msg.get("owner"))
        path, real, why = msg.get("path"), msg.get("real"), msg.get("why")
        if session is None or not isinstance(path, str) or path not in session.pending_watches:
            return
        role = session.pending_watches.pop(path)
        if why is None and isinstance(real, str) and refuse_request(real, role) is None:
            session.watched[real] = role
            if msg.get("pending") is True:
                log.info("run %s: will watch %s once it exists (%s)", session.run_id, real[:300], role)
            else:
                log.info("run %s: watching %s (%s)", session.run_id, real[:300], role)
            return
        why = why or "its worker answered with an unusable path"
        session.notice(f"not watching {path}: {str(why)[:300]}", part="dirs", path=path)

    def _took_totals(self, worker: UidWorker, dirs: Any, lost: Any) -> None:
        if isinstance(lost, list):
            for item in lost[:256]:
                if isinstance(item, list) and len(item) == 3:
                    self._lost(worker, *item)
        if not isinstance(dirs, dict):
            return
        for owner, entries in dirs.items():
            session = self._run_of(worker, owner)
            if session is None or not isinstance(entries, dict):
                continue
            checked = {path: _entry(entry) for path, entry in entries.items() if path in session.watched}
            self._dirs[session.run_id] = {path: entry for path, entry in checked.items() if entry is not None}

    def _lost(self, worker: UidWorker, owner: Any, path: Any, why: Any) -> None:
        session = self._run_of(worker, owner)
        if session is not None and isinstance(path, str) and session.watched.pop(path, None) is not None:
            session.notice(f"stopped watching {path}: {str(why)[:300]}", part="dirs", path=path)

    def _on_gone(self, worker: UidWorker, why: str) -> None:
        """A worker ended (its user may kill it): its runs' watches are asked again of the
        next one, at the next sample after RESPAWN_SECONDS."""
        for session in self._of(*worker.key):
            self._dirs.pop(session.run_id, None)
            for path in list(session.pending_watches):
                session.watched.setdefault(path, session.pending_watches.pop(path))

    # -- samples -------------------------------------------------------------------------------

    def totals(self, session: Session) -> Record:
        """The latest sizes of the run's watched directories (its worker's last answer), and
        a fresh request for them; a run whose worker ended gets a new one, its watches asked
        again."""
        if not session.watched and not session.pending_watches:
            return {}
        key = (session.uid, session.state.gid)
        worker = self.workers.running(*key)
        if worker is None:
            worker = self._restart(session)
        if worker is not None and time.monotonic() - self._asked_at.get(key, 0.0) >= TOTALS_EVERY_SECONDS:
            self._asked_at[key] = time.monotonic()
            worker.send({"op": "totals"})
        return self._dirs.get(session.run_id, {})

    def _restart(self, session: Session) -> UidWorker | None:
        worker, _ = self.workers.get(session.uid, session.state.gid)
        if worker is None:
            return None
        for run in self._of(session.uid, session.state.gid):
            asked = {**run.watched, **run.pending_watches}
            run.watched.clear()
            run.pending_watches.clear()
            for path, role in asked.items():
                self._send(run, path, role)
        return worker

    def release(self, session: Session) -> None:
        """The run ended: its watches go; its worker too once no run of its (uid, gid) is left."""
        key = (session.uid, session.state.gid)
        worker = self.workers.running(*key)
        if worker is not None:
            worker.send({"op": "forget", "owner": session.run_id})
        session.watched.clear()
        session.pending_watches.clear()
        self._dirs.pop(session.run_id, None)
        if not any(s is not session for s in self._of(*key)):
            self.workers.stop(*key)

    def close(self) -> None:
        self.workers.close()


def _entry(entry: Any) -> Record | None:
    """A worker's totals for one root, if well-formed: counts, a role, free bytes, nothing else."""
    if not isinstance(entry, dict):
        return None
    size, files, role = entry.get("bytes"), entry.get("files"), entry.get("role")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (size, files)):
        return None
    out: Record = {
        "bytes": size,
        "files": files,
        "role": role if isinstance(role, str) and role in ROLES else "user",
    }
    if entry.get("top_level_only") is True:
        out["top_level_only"] = True
    free = entry.get("free_bytes")
    if isinstance(free, int) and not isinstance(free, bool) and free >= 0:
        out["free_bytes"] = free
    return out
