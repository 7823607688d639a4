"""Sizes of watched directories (checkpoints, backups, TensorBoard logs, temp), kept
current from file-system events.

The hook reads the totals at every epoch end inside training, and walking a tree there
costs real time (a scandir+stat walk of 10,000 files takes ~43 ms). So a `DirWatcher`
walks each root once, on its own worker thread, and from then on keeps a per-file
size map current from watchdog events (created, modified, closed, deleted, moved),
each handled on the observer's thread by re-reading the one path it names. `totals()`
then only reads per-root counters: O(roots), no lock, no file-system access except an
`isdir` for each root that does not exist yet.

How it degrades, each said once on stderr and never raised:
- A root that does not exist yet (ModelCheckpoint creates its directory at the first
  save) is remembered and watched once it appears; until then it is not in `totals()`.
- A root with more than `max_dirs` subdirectories (a busy /tmp) is watched at its top
  level only: its totals count the files directly in it, and say `"top_level_only": true`.
- When a watch cannot be added (the inotify watch or instance limit, ENOSPC/EMFILE, or
  no watchdog at all), the root is rescanned on the worker thread every few seconds
  instead (more seldom for big trees), still never on the caller's thread.
- Events can be lost (inotify queue overflow, subdirectories watchdog could not watch,
  NFS changes made elsewhere), so every root is also rescanned on the worker thread,
  seldom (every 5 minutes, or 200 times its scan's cost if that is longer).
- A root is left out of `totals()` while its first scan runs, so a half-counted tree is
  never mistaken for a shrinking or growing one.

Sizes are apparent sizes of regular files, symlinks not counted (dirtree.py). Roots are
watched resolved and opened one component at a time with O_NOFOLLOW, so a root swapped
for a symlink is never followed (a root resolved when asked stays that directory). A
`check` given by the owner of the watcher decides, at every activation of a root (the
first and after its directory was deleted and came back), which owners may still have it:
the daemon's per-user worker, which runs as that user, checks the path again there.
Nested roots share one size map and each report their own totals. The watcher holds its
parts: the size map (dirtree.py) and the event source (direvents.py), and handles each
event's path itself (`_refresh`).
"""

from __future__ import annotations

import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from epochwatch import notices
from epochwatch.guard import say
from epochwatch.samplers.direvents import EventSource
from epochwatch.samplers.dirtree import Root, SizeMap
from epochwatch.samplers.nofollow import count_dirs, ident, is_dir, lstat_at
from epochwatch.trace.schema import ROLES

MAX_DIRS = 5000
# Poll-mode rescans: at least this far apart, and at most 5% of the worker's time.
_POLL_MIN_SECONDS = 5.0
_POLL_COST_FACTOR = 20.0
# Roots kept current by events are rescanned too, seldom (at most 0.5% of the worker's
# time): events can be lost (inotify queue overflow; watchdog skips subdirectories it
# cannot watch at the watch limit; changes made by other hosts on NFS), and a lost event
# would otherwise skew the totals for the rest of the run.
_RECONCILE_MIN_SECONDS = 300.0
_RECONCILE_COST_FACTOR = 200.0
_STOP = object()
# check(root path, its owners) -> the owners that may have it (see DirWatcher)
Check = Callable[[str, frozenset[Hashable]], Iterable[Hashable]]


# The shared temp directory holds every user's leftovers: scanning and watching all of it
# would cost each training process seconds of CPU on a busy host. Past a few dozen
# subdirectories it is counted at its top level, where NamedTemporaryFile(delete=False)
# and mkstemp leftovers land.
ROLE_MAX_DIRS = {"temp": 64}


class DirWatcher:
    """Watches directories and keeps their byte and file counts current.

    One watchdog observer and one worker thread, both started at the first `watch()`
    and both stopped and joined by `close()`. In the daemon, each user's worker has one
    for all that user's runs (each run passes its own `owner`); the hook has one per
    process.
    """

    def __init__(
        self, *, max_dirs: int = MAX_DIRS, idle_seconds: float = 1.0, check: Check | None = None
    ) -> None:
        """`check`, when given, runs on the worker thread before each (re)activation of a
        root: owners it leaves out lose the root (gone once it has none), so a directory
        deleted and replaced is judged again."""
        self.max_dirs = max_dirs
        self._check = check
        self.idle_seconds = idle_seconds
        self._map = SizeMap(stopped=lambda: self._closing)
        self._lock = self._map.lock  # one lock: the roots below and the map change together
        self._roots: dict[str, Root] = {}
        # Copy-on-write, so readers on other threads never need the lock (the map has the
        # tuples of roots scanning and live):
        self._pending: tuple[Root, ...] = ()  # waiting for their directory to exist
        self._events = EventSource(self._refresh, lambda message: self._say_once("event", message))
        self._tasks: queue.Queue[Any] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._worker_pid = 0
        self._paths: dict[str, str] = {}  # as given -> as watched (realpath), a cache
        self._said: set[str] = set()
        self._closing = False
        self._worker_cpu = 0.0  # the worker thread's CPU time after its latest work

    @property
    def cpu_seconds(self) -> float:
        """CPU time of the worker and observer threads so far (the hook counts it as overhead)."""
        return self._worker_cpu + self._events.cpu_seconds

    # public API

    def watch(self, path: str | os.PathLike[str], role: str = "user", *, owner: Hashable = None) -> bool:
        """Start watching `path` (idempotent; `owner` lets several runs share a root).

        False, said once, when the path exists but is not a readable directory. A path
        that does not exist yet is watched from when it appears. A role other than
        "user" replaces "user" on a root watched twice.
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {sorted(ROLES)}")
        if self._closing:
            return False
        label = os.path.abspath(os.fspath(path))
        root_path = self._norm(path)
        if os.path.exists(root_path):
            problem = None
            if not os.path.isdir(root_path):
                problem = "not a directory"
            elif not os.access(root_path, os.R_OK | os.X_OK):
                problem = "permission denied"
            if problem:
                self._say_once(f"bad:{root_path}", f"cannot watch {root_path}: {problem}")
                return False
        with self._lock:
            root = self._roots.get(root_path)
            if root is not None:
                root.owners.add(owner)
                if root.role == "user":
                    root.role = role
                return True
            root = Root(root_path, role, label, {owner}, queued=True)
            self._roots[root_path] = root
            self._pending += (root,)
            self._start_worker()
        self._tasks.put(("activate", root))
        return True

    def unwatch(self, path: str | os.PathLike[str], *, owner: Hashable = None) -> None:
        """Stop watching `path` for `owner`; the root goes when its last owner does."""
        root_path = self._norm(path)
        with self._lock:
            root = self._roots.get(root_path)
            if root is None:
                return
            root.owners.discard(owner)
            if root.owners:
                return
            del self._roots[root_path]
            self._forget(root)
            root.state = "gone"
            watch, root.watch = root.watch, None
            for directory in [d for d in self._map.tree if not self._map.tracked(d)]:
                del self._map.tree[directory]
        if watch is not None:
            self._tasks.put(("unschedule", watch))

    def totals(self, paths: Iterable[str | os.PathLike[str]] | None = None) -> dict[str, dict[str, Any]]:
        """`{abs_path: {"bytes", "files", "role"}}` for each live root (or those of `paths`),
        keyed by the absolute path as first given to `watch()` (symlinks not resolved).

        Cheap: no lock and no walking. Roots still on their first scan, or not yet
        created, are left out. A root watched at its top level only adds
        `"top_level_only": True`.
        """
        for root in self._pending:
            if not root.queued and not self._closing and is_dir(root.path):
                root.queued = True
                self._tasks.put(("activate", root))
        wanted = None if paths is None else {self._norm(p) for p in paths}
        out: dict[str, dict[str, Any]] = {}
        for root in self._map.live:
            if wanted is not None and root.path not in wanted:
                continue
            entry: dict[str, Any] = {"bytes": root.bytes, "files": root.files, "role": root.role}
            if not root.recursive:
                entry["top_level_only"] = True
            out[root.label] = entry
        return out

    def status(self) -> dict[str, dict[str, Any]]:
        """Every root with its state (pending, scanning, live) and how it is kept current
        (events or poll, recursive or top level): for `epochwatch status` and tests."""
        with self._lock:
            return {
                r.label: {
                    "role": r.role,
                    "state": r.state,
                    "recursive": r.recursive,
                    "mode": "poll" if r.poll else "events",
                }
                for r in self._roots.values()
            }

    def close(self) -> None:
        """Stop and join the worker, the observer and the observer's emitters."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            worker = self._worker
        if worker is not None:
            self._tasks.put(_STOP)
            worker.join()
        self._events.close()

    def _norm(self, path: str | os.PathLike[str]) -> str:
        """The absolute, symlink-free path a root is watched and reported under.

        inotify reports events under the path it was given and does not follow a
        symlinked root, so roots are watched resolved; two spellings of one directory
        are one root. Cached, as realpath stats each part.
        """
        given = os.fspath(path)
        resolved = self._paths.get(given)
        if resolved is None:
            resolved = os.path.realpath(os.path.abspath(given))
            if len(self._paths) < 10_000:
                self._paths[given] = resolved
        return resolved

    # worker thread

    def start(self) -> None:
        """Start the worker thread now rather than at the first `watch()` (the hook does it
        on its warm-up thread: a thread start can wait for a core on a busy machine)."""
        with self._lock:
            self._start_worker()

    def _start_worker(self) -> None:
        if self._worker is None or self._worker_pid != os.getpid():  # none yet, or a forked child's
            self._worker = threading.Thread(target=self._run, name="epochwatch-dirs", daemon=True)
            self._worker_pid = os.getpid()
            self._worker.start()

    def _run(self) -> None:
        while True:
            try:
                task = self._tasks.get(timeout=self._wait_seconds())
            except queue.Empty:
                task = None
            if task is _STOP:
                return
            try:
                if task is not None:
                    self._do(task)
                self._activate_pending()
                self._poll_due()
            except Exception as exc:
                self._say_once("worker", f"directory watcher error: {type(exc).__name__}: {exc}")
            self._worker_cpu = time.thread_time()

    def _wait_seconds(self) -> float:
        wait = self.idle_seconds
        now = time.monotonic()
        for root in self._map.live:
            wait = min(wait, max(0.0, root.next_poll - now))
        return wait

    def _do(self, task: tuple[str, Any]) -> None:
        kind, arg = task
        if kind == "activate":
            arg.queued = False
            self._activate(arg)
        elif kind == "unschedule":
            self._events.unschedule(arg)
        elif kind == "lost":
            self._lost(arg)

    def _activate_pending(self) -> None:
        for root in self._pending:
            if self._closing:
                return
            if os.path.lexists(root.path):  # a symlink too: the check refuses it
                self._activate(root)

    def _activate(self, root: Root) -> None:
        """pending -> scanning -> live: decide how to watch, watch, scan, publish."""
        if root.state != "pending" or self._closing or not os.path.lexists(root.path):
            return
        if self._check is not None and not self._still_allowed(root):
            return
        root.ident = ident(root.path)
        if root.ident is None:
            return
        limit = min(self.max_dirs, ROLE_MAX_DIRS.get(root.role, self.max_dirs))
        recursive = count_dirs(root.path, limit) <= limit
        if not recursive:
            self._say_once(
                f"top:{root.path}",
                f"watching only the top level of {root.path}: more than {limit} subdirectories",
                per_host=True,
            )
        with self._lock:
            if root.state != "pending":
                return
            root.recursive = recursive
            root.state = "scanning"
            self._pending = tuple(r for r in self._pending if r is not root)
            self._map.members += (root,)
        watch, why = self._events.schedule(root.path, recursive)
        started = time.monotonic()
        self._map.walk(root.path, recursive, root)
        cost = time.monotonic() - started
        with self._lock:
            if root.state != "scanning":  # unwatched or lost meanwhile
                stale, watch = watch, None
            else:
                stale = None
                root.watch = watch
                root.poll = watch is None
                root.bytes, root.files = self._map.sum(root)
                root.state = "live"
                self._map.live += (root,)
                self._set_poll_interval(root, cost)
        if stale is not None:
            self._events.unschedule(stale)
        if why is not None:
            self._say_once(
                "poll",
                f"file-system events unavailable ({why}); watched directories are rescanned "
                f"every few seconds instead, starting with {root.path}",
                per_host=True,
            )

    def _still_allowed(self, root: Root) -> bool:
        """Ask `check` about the root's owners; drop those refused, and the root with the last."""
        assert self._check is not None
        with self._lock:
            owners = frozenset(root.owners)
        allowed = set(self._check(root.path, owners))
        with self._lock:
            root.owners &= allowed | (root.owners - owners)  # owners added meanwhile stay
            if root.owners:
                return True
            if self._roots.get(root.path) is root:
                del self._roots[root.path]
            self._forget(root)
            root.state = "gone"
        return False

    def _set_poll_interval(self, root: Root, cost: float) -> None:
        if root.poll:
            root.poll_interval = max(_POLL_MIN_SECONDS, _POLL_COST_FACTOR * cost)
        else:
            root.poll_interval = max(_RECONCILE_MIN_SECONDS, _RECONCILE_COST_FACTOR * cost)
        root.next_poll = time.monotonic() + root.poll_interval

    def _poll_due(self) -> None:
        """Rescan roots in poll mode when due, and the others when their (rare) check is."""
        now = time.monotonic()
        for root in self._map.live:
            if now < root.next_poll or self._closing:
                continue
            if ident(root.path) != root.ident:
                self._lost(root)
                continue
            started = time.monotonic()
            self._map.walk(root.path, root.recursive, root)
            self._set_poll_interval(root, time.monotonic() - started)

    def _lost(self, root: Root) -> None:
        """A live root's directory was deleted: forget its files, wait for it to return."""
        with self._lock:
            if root.state not in ("scanning", "live") or ident(root.path) == root.ident:
                return
            self._forget(root)
            self._map.drop_dir(root.path)
            root.state = "pending"
            root.bytes = root.files = 0
            root.poll = False
            self._pending += (root,)
            watch, root.watch = root.watch, None
        if watch is not None:
            self._events.unschedule(watch)

    def _forget(self, root: Root) -> None:
        """Take a root out of every published tuple (lock held)."""
        self._pending = tuple(r for r in self._pending if r is not root)
        self._map.forget(root)

    # events (observer thread)

    def _refresh(self, path: str) -> None:
        """Re-read the one path an event names: a file's size, or a root or directory that
        came, went or was replaced."""
        directory, name = os.path.split(path)
        walk = False
        activate = lost = None
        with self._lock:
            info = lstat_at(directory, name)
            if info is not None and stat.S_ISREG(info.st_mode):
                if self._map.tracked(directory):
                    self._map.set_size(directory, name, info.st_size)
                return
            was_file = self._map.drop_file(directory, name)
            root = self._roots.get(path)
            if root is not None and root.state in ("scanning", "live") and ident(path) != root.ident:
                lost = root  # deleted, or replaced (by a symlink, another directory)
            if info is None:
                if not was_file:
                    self._map.drop_dir(path)
            elif stat.S_ISDIR(info.st_mode):
                if root is not None and root.state == "pending" and not root.queued:
                    root.queued = True
                    activate = root
                walk = path not in self._map.tree and any(
                    r.recursive and r.covers(path) for r in self._map.members
                )
        if activate is not None:
            self._tasks.put(("activate", activate))
        if lost is not None:
            self._tasks.put(("lost", lost))
        if walk:
            self._map.walk(path, True, None)

    def _say_once(self, key: str, message: str, per_host: bool = False) -> None:
        """Once per watcher; per_host: a fact of this machine, said once per host in training."""
        with self._lock:
            if key in self._said:
                return
            self._said.add(key)
        if per_host:
            notices.once_per_host(key, message)
        else:
            say(message)
