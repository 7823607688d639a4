"""The `dirs` block of a run: the totals of the directories it watches, read from a
`DirWatcher` (dirwatch.py) that the hook owns, with the free space of each one's file
system at that moment (the daemon's per-user workers write theirs: userworker.py)."""

from __future__ import annotations

import os
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

    def sample(self) -> list[dict[str, Any]] | None:
        totals = self.watcher.totals()
        for path, entry in totals.items():
            free = _free_bytes(path)
            if free is not None:
                entry["free_bytes"] = free
        return schema.dirs_block(totals) or None

    def close(self) -> None:
        """Nothing: the watcher's owner closes it."""


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
