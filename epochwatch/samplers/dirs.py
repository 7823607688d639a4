"""The `dirs` block of a run: the totals of the directories it watches, read from a
`DirWatcher` (dirwatch.py) that the hook or the daemon owns."""

from __future__ import annotations

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
        return schema.dirs_block(self.watcher.totals()) or None

    def close(self) -> None:
        """Nothing: the watcher's owner closes it."""
