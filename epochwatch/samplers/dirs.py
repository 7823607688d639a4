"""The `dirs` block of a run: the totals of the directories it watches, read from a
`DirWatcher` (dirwatch.py) that the hook or the daemon owns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from epochwatch.samplers.dirwatch import DirWatcher
from epochwatch.trace import schema


class DirsSampler:
    """The `dirs` block: a DirWatcher's totals (only `paths`, when given).

    It does not own the watcher (the hook or the daemon does), so `close()` leaves it
    running.
    """

    name = "dirs"

    def __init__(self, watcher: DirWatcher, paths: Iterable[str] | None = None) -> None:
        self.watcher = watcher
        self.paths = None if paths is None else list(paths)

    def sample(self) -> list[dict[str, Any]] | None:
        return schema.dirs_block(self.watcher.totals(self.paths)) or None

    def close(self) -> None:
        """Nothing: the watcher's owner closes it."""
