"""The `dirs` block of a run: the totals of the directories it watches, read from a
`DirWatcher` (dirwatch.py) that the hook owns, with the free space of each one's file
system (the daemon's per-user workers write theirs: userworker.py).

The free space is read off the training thread: `sample()` runs at each epoch end, and a
`statvfs` of a directory on a network file system that stopped answering blocks. A thread
refreshes it (one at a time, at most every REFRESH_SECONDS); a sample says the newest read,
and none for a directory not read yet or whose file system hangs."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from epochwatch.samplers.dirwatch import DirWatcher
from epochwatch.trace import schema


class DirsSampler:
    """The `dirs` block: the totals of every root a DirWatcher watches.

    It does not own the watcher (the hook or the daemon does), so `close()` leaves it
    running.
    """

    name = "dirs"

    def __init__(self, watcher: DirWatcher) -> None:
        self.watcher = watcher
        self._free: dict[str, int] = {}  # path -> free bytes, as last read
        self._reading = False
        self._read_at = -REFRESH_SECONDS

    def sample(self) -> list[dict[str, Any]] | None:
        totals = self.watcher.totals()
        for path, entry in totals.items():
            free = self._free.get(path)
            if free is not None:
                entry["free_bytes"] = free
        self._refresh(list(totals))
        return schema.dirs_block(totals) or None

    def _refresh(self, paths: list[str]) -> None:
        now = time.monotonic()
        if self._reading or not paths or now - self._read_at < REFRESH_SECONDS:
            return
        self._reading, self._read_at = True, now
        thread = threading.Thread(target=self._read, args=(paths,), name="epochwatch-dirs-free", daemon=True)
        thread.start()

    def _read(self, paths: list[str]) -> None:
        try:
            for path in paths:
                free = _free_bytes(path)
                if free is not None:
                    self._free[path] = free
        finally:
            self._reading = False

    def close(self) -> None:
        """Nothing: the watcher's owner closes it."""


# The free space is read again at most this often: it moves slowly, and each read starts
# a thread (short epochs end many times a second).
REFRESH_SECONDS = 5.0


def _free_bytes(path: str) -> int | None:
    """The free space a directory's file system has for this process' user, now: what a
    finding's "the disk is full in about N epochs" is reckoned from, in `report` as live
    (`report` measured it at analysis time, or not at all once a run's temp directory was
    gone: live "full in about 20 min", `report` nothing)."""
    try:
        st = os.statvfs(path)
    except (OSError, ValueError):
        return None
    return st.f_bavail * st.f_frsize
