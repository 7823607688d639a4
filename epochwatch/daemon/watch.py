"""Directories the daemon watches for its runs: one shared observer, and who may ask.

A hook sends `watch` records for its checkpoint, backup and TensorBoard directories.
The daemon runs as root, so it checks on the client's behalf that the client's uid
could list the directory itself (search permission on every ancestor, read and search
on the directory), using the uid and groups the kernel gave for the connection. The
path is resolved first, so a symlink cannot point the daemon somewhere else. Two runs
watching the same directory share one watch (the DirWatcher counts owners).

The check is not only made when asked: a watched directory that is deleted and comes
back (a user can replace it with a symlink to a directory only root may read) is checked
again for each run that watches it before it is walked (`SharedWatcher._check`), and the
walk itself never follows a symlink (samplers/dirtree.py). A run that lost a directory that
way is told through `take_refusals`.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Hashable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("epochwatch.daemon")


def groups_of(uid: int, gid: int) -> set[int]:
    """The uid's groups (primary from the connection, supplementary from the user database)."""
    groups = {gid}
    try:
        import pwd

        name = pwd.getpwuid(uid).pw_name
        groups.update(os.getgrouplist(name, gid))
    except (KeyError, OSError, ImportError):
        pass
    return groups


def _allowed(st: os.stat_result, uid: int, groups: set[int], need: int) -> bool:
    """Whether (uid, groups) has all of `need` (a mask of 4=r, 2=w, 1=x) on this inode."""
    if uid == 0:
        return True
    mode = st.st_mode
    if st.st_uid == uid:
        bits = (mode >> 6) & 7
    elif st.st_gid in groups:
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    return bits & need == need


MISSING = "does not exist yet"


def refuse_watch(raw: Any, uid: int, gid: int) -> tuple[str | None, str]:
    """(why not, resolved path): why `uid` may not watch `raw`, or None when it may.

    A directory that does not exist yet gives MISSING: the caller asks again once it
    appears (checkpoint directories are made at the first save), so the check always
    runs on the real directory, never on a name that could later become a symlink.
    """
    if not isinstance(raw, str) or not raw or "\0" in raw:
        return "not a path", ""
    if not os.path.isabs(raw):
        return "not an absolute path", raw
    if not os.path.lexists(raw):
        return MISSING, raw
    try:
        real = os.path.realpath(raw, strict=True)
    except OSError as exc:
        return f"cannot resolve ({exc.strerror or exc})", raw
    try:
        st = os.stat(real)
    except OSError as exc:
        return f"cannot stat ({exc.strerror or exc})", real
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory", real
    groups = groups_of(uid, gid)
    if not _allowed(st, uid, groups, 5):
        return f"uid {uid} cannot read it", real
    for parent in Path(real).parents:
        try:
            pst = os.stat(parent)
        except OSError:
            return "cannot stat a parent directory", real
        if not _allowed(pst, uid, groups, 1):
            return f"uid {uid} cannot reach it (no search permission on {parent})", real
    return None, real


class SharedWatcher:
    """The daemon's one DirWatcher (one observer thread for every run), made on first use.

    Each run is an `owner` of the roots it watches, so two runs sharing a checkpoint
    directory share one watch, and it goes when the last of them does.
    """

    def __init__(self) -> None:
        self._watcher: Any = None
        self._broken: str | None = None
        self._lock = threading.Lock()  # the two dicts below are read on the watcher's thread
        self._creds: dict[Hashable, tuple[int, int]] = {}  # owner -> (uid, gid)
        self._refused: dict[Hashable, list[tuple[str, str]]] = {}  # owner -> [(path, why)]

    def _ensure(self) -> Any:
        if self._watcher is None and self._broken is None:
            try:
                from epochwatch.samplers.dirwatch import DirWatcher

                self._watcher = DirWatcher(check=self._check)
            except Exception as exc:
                self._broken = f"{type(exc).__name__}: {exc}"
                log.warning("directory watching unavailable: %s", self._broken)
        return self._watcher

    def _check(self, path: str, owners: frozenset[Hashable]) -> Iterable[Hashable]:
        """On the watcher's thread, before a root is (re)activated: the owners whose uid
        may still read `path`, reached without a symlink (it was resolved when asked)."""
        allowed = []
        for owner in owners:
            with self._lock:
                creds = self._creds.get(owner)
            if creds is None:
                continue  # unknown owner: nothing vouches for it
            why, real = refuse_watch(path, *creds)
            if why is None and real != path:
                why = "it became a symlink"
            if why is None:
                allowed.append(owner)
                continue
            log.warning("not watching %s for run %s any more: %s", path[:300], owner, why)
            with self._lock:
                self._refused.setdefault(owner, []).append((path, why))
        return allowed

    def take_refusals(self, owner: Hashable) -> list[tuple[str, str]]:
        """(path, why) for each directory `owner` lost at a re-check since the last call."""
        with self._lock:
            return self._refused.pop(owner, [])

    def watch(self, path: str, role: str, owner: str, uid: int = 0, gid: int = 0) -> str | None:
        """Start (or share) a watch for `owner`, who is (uid, gid); returns why it failed, or None."""
        with self._lock:
            self._creds[owner] = (uid, gid)
        watcher = self._ensure()
        if watcher is None:
            return f"directory watching unavailable ({self._broken})"
        try:
            ok = watcher.watch(path, role, owner=owner)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if ok else "the watcher refused it"

    def unwatch(self, path: str, owner: str) -> None:
        if self._watcher is not None:
            try:
                self._watcher.unwatch(path, owner=owner)
            except Exception as exc:
                log.warning("unwatching %s failed: %s", path, exc)

    def forget(self, owner: Hashable) -> None:
        """The owner's run ended (after it unwatched everything)."""
        with self._lock:
            self._creds.pop(owner, None)
            self._refused.pop(owner, None)

    def totals(self, paths: list[str]) -> dict[str, Any]:
        if self._watcher is None or not paths:
            return {}
        try:
            return dict(self._watcher.totals(paths))
        except Exception:
            return {}

    def close(self) -> None:
        if self._watcher is not None:
            try:
                self._watcher.close()
            except Exception as exc:
                log.warning("closing the directory watcher failed: %s", exc)
            self._watcher = None
