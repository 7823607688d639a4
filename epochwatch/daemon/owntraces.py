"""The names of each user's own traces, told to that user's runs at their hello.

A resumed run finds its restore's parent by scanning the traces for the save it restored
(analysis/restore/scan.py). The daemon's `traces/` is 0711 so that no user lists another's
runs, which also means a user cannot list their own: on a shared host a run under the
daemon never found its parent, and every restore finding was silent there. The daemon,
which may list its own directory, tells each run the names of its uid's traces (newest
first, at most MAX_NAMES); the hook opens them by name with its own rights, as it opens
its own trace. A uid learns only names of files it owns, and chooses none of them (the
daemon names traces: store.py).

The index costs one listing of `traces/` at start (entries checked with lstat: only
regular files owned by the uid) and one entry per trace the daemon creates; a trace
removed since is a name the hook fails to open, and skips.
"""

from __future__ import annotations

import heapq
import logging
import os
import stat
import time
from collections import defaultdict
from pathlib import Path

# As many as the hook's parent scan reads (scan.MAX_FILES); the welcome stays a few KB.
MAX_NAMES = 200

log = logging.getLogger("epochwatch.daemon")


class OwnTraces:
    """uid -> {trace file name: modification time}, at most MAX_NAMES each (the newest)."""

    def __init__(self, traces: Path) -> None:
        self._traces = traces
        self._by_uid: dict[int, dict[str, float]] = defaultdict(dict)

    def scan(self) -> None:
        """At start, once `traces/` is made."""
        found: dict[int, dict[str, float]] = defaultdict(dict)
        try:
            with os.scandir(self._traces) as entries:
                for entry in entries:
                    if not entry.name.endswith(".jsonl"):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        found[st.st_uid][entry.name] = st.st_mtime
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot list %s (restores under this daemon find no parent): %s", self._traces, exc)
        for uid, names in found.items():
            newest = heapq.nlargest(MAX_NAMES, names, key=names.__getitem__)
            self._by_uid[uid] = {name: names[name] for name in newest}

    def add(self, uid: int, name: str, mtime: float | None = None) -> None:
        names = self._by_uid[uid]
        names[name] = time.time() if mtime is None else mtime
        if len(names) > MAX_NAMES:
            del names[min(names, key=names.__getitem__)]

    def names(self, uid: int, *, exclude: str = "") -> list[str]:
        """The uid's trace names, newest first."""
        names = self._by_uid.get(uid, {})
        newest = heapq.nlargest(MAX_NAMES, names, key=names.__getitem__)
        return [n for n in newest if n != exclude]
