"""The watcher's size map: per directory, the size of each file in it, and each live
root's byte and file counters moved by every change.

Sizes are apparent sizes (st_size) of regular files; symlinks are neither followed nor
counted, so a `latest -> ckpt-5` link does not count a checkpoint twice. Directories are
listed and files stat'ed through `nofollow`, so a subdirectory swapped for a symlink is
never followed. `DirWatcher` (dirwatch.py) holds one SizeMap; the map owns the lock that
guards it and the published tuples of the roots whose files it tracks and counts.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from epochwatch.samplers.nofollow import is_dir as _is_dir
from epochwatch.samplers.nofollow import list_dir as _list_dir
from epochwatch.samplers.nofollow import lstat_at as _lstat_at


@dataclass(eq=False)
class Root:
    """One watched directory and its running totals."""

    path: str  # resolved (realpath): what is watched and tracked
    role: str
    label: str = ""  # absolute path as first given: what totals() reports it under
    owners: set[Hashable] = field(default_factory=set)
    state: str = "pending"  # pending -> scanning -> live; live -> pending when deleted; gone
    recursive: bool = True
    poll: bool = False
    watch: Any = None  # watchdog ObservedWatch
    bytes: int = 0
    files: int = 0
    queued: bool = False
    poll_interval: float = 0.0  # set with next_poll, by DirWatcher._set_poll_interval
    next_poll: float = 0.0
    ident: tuple[int, ...] | None = None  # who the directory activated is (nofollow.ident)

    @property
    def prefix(self) -> str:
        return self.path if self.path.endswith(os.sep) else self.path + os.sep

    def covers(self, directory: str) -> bool:
        """Whether files directly in `directory` count towards this root."""
        return directory == self.path or (self.recursive and directory.startswith(self.prefix))


class SizeMap:
    """The size map and the walks and counters that keep it (see the module docstring).

    `members` and `live` are copy-on-write tuples, so readers on other threads need no
    lock; every method that says "lock held" needs `lock`. `stopped` says when a walk
    should give up (the watcher is closing)."""

    def __init__(self, stopped: Callable[[], bool]) -> None:
        self.lock = threading.Lock()
        self.tree: dict[str, dict[str, int]] = {}  # directory -> {file name: size}
        self.members: tuple[Root, ...] = ()  # scanning or live: their files are tracked
        self.live: tuple[Root, ...] = ()  # counted, reported by totals()
        self.stopped = stopped

    def walk(self, top: str, recursive: bool, root: Root | None) -> None:
        """Bring the map in line with the disk under `top`: add, update, drop.

        Each file is stat'ed and recorded under the lock, one at a time, so an event
        handled meanwhile for the same path is never overwritten with an older size,
        and `totals()` callers are never held up by more than one stat.
        """
        visited: set[str] = set()
        stack = [top]
        while stack:
            if self.stopped() or (root is not None and root.state == "gone"):
                return
            directory = stack.pop()
            try:
                entries = _list_dir(directory)
            except OSError:
                with self.lock:
                    if not _is_dir(directory):
                        self.drop_dir(directory)
                continue
            visited.add(directory)
            with self.lock:
                if not self.tracked(directory):
                    continue
                self.tree.setdefault(directory, {})
            names = set()
            for name, is_dir, info in entries:
                if is_dir:
                    if recursive:
                        stack.append(os.path.join(directory, name))
                    continue
                names.add(name)
                with self.lock:
                    self.record(directory, name, info)
            with self.lock:
                vanished = [n for n in self.tree.get(directory, ()) if n not in names]
            for name in vanished:
                with self.lock:
                    self.record(directory, name, _lstat_at(directory, name))
        if root is not None and recursive:
            with self.lock:
                unseen = [d for d in self.tree if root.covers(d) and d not in visited]
                for directory in unseen:
                    if not _is_dir(directory):
                        self.drop_dir(directory)

    def record(self, directory: str, name: str, info: os.stat_result | None) -> None:
        """A file's size as just stat'ed, or its absence (lock held)."""
        if info is not None and stat.S_ISREG(info.st_mode):
            if self.tracked(directory):
                self.set_size(directory, name, info.st_size)
        else:
            self.drop_file(directory, name)

    def tracked(self, directory: str) -> bool:
        """Whether files in `directory` belong to any scanning or live root (lock held)."""
        return any(root.covers(directory) for root in self.members)

    def set_size(self, directory: str, name: str, size: int) -> None:
        """Record a file's size and move the live counters by the change (lock held)."""
        files = self.tree.setdefault(directory, {})
        old = files.get(name)
        if old == size:
            return
        files[name] = size
        self._count(directory, size - (old or 0), int(old is None))

    def drop_file(self, directory: str, name: str) -> bool:
        """Forget one file; whether it was known (lock held)."""
        files = self.tree.get(directory)
        if not files or name not in files:
            return False
        self._count(directory, -files.pop(name), -1)
        return True

    def drop_dir(self, path: str) -> None:
        """Forget a directory and everything under it (lock held)."""
        prefix = path if path.endswith(os.sep) else path + os.sep
        for directory in [d for d in self.tree if d == path or d.startswith(prefix)]:
            files = self.tree.pop(directory)
            self._count(directory, -sum(files.values()), -len(files))

    def _count(self, directory: str, size: int, files: int) -> None:
        """Move the counters of the live roots that count `directory`'s files (lock held)."""
        for root in self.live:
            if root.covers(directory):
                root.bytes += size
                root.files += files

    def sum(self, root: Root) -> tuple[int, int]:
        """A root's totals from the map, when it goes live (lock held)."""
        size = count = 0
        for directory, files in self.tree.items():
            if root.covers(directory):
                size += sum(files.values())
                count += len(files)
        return size, count

    def forget(self, root: Root) -> None:
        """Take a root out of the published tuples (lock held)."""
        self.members = tuple(r for r in self.members if r is not root)
        self.live = tuple(r for r in self.live if r is not root)
