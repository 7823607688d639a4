"""The names of each user's own traces, told to that user's runs at their hello, and how
many each user has.

A resumed run finds its restore's parent by scanning the traces for the save it restored
(analysis/restore/scan.py). The daemon's `traces/` is 0711 so that no user lists another's
runs, which also means a user cannot list their own: on a shared host a run under the
daemon never found its parent, and every restore finding was silent there. The daemon,
which may list its own directory, tells each run the names of its uid's traces (newest
first, at most MAX_NAMES); the hook opens them by name with its own rights, as it opens
its own trace. A uid learns only names of files it owns, and chooses none of them (the
daemon names traces: store.py); a trace the daemon removes leaves the index with it.

The count per uid bounds the files a user leaves (`max_traces_per_uid`): a loop of
hello, run_end, bye left 10,000 files in 50 s, inodes and blocks nothing metered.

The index costs one listing of `traces/` at start, on a thread of its own (300,000
traces took 4.7 s: the daemon does not wait for it), keeping MAX_NAMES per uid as it
goes (entries checked with lstat: only regular files, by owner), and one entry per trace
the daemon creates.
"""

from __future__ import annotations

import heapq
import logging
import os
import stat
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

# As many as the hook's parent scan reads (scan.MAX_FILES); the welcome stays a few KB.
MAX_NAMES = 200

log = logging.getLogger("epochwatch.daemon")


class OwnTraces:
    """uid -> {trace file name: modification time}, at most MAX_NAMES each (the newest),
    and uid -> how many traces it has."""

    def __init__(self, traces: Path) -> None:
        self._traces = traces
        self._lock = threading.Lock()  # the scan's thread and the event loop
        self._by_uid: dict[int, dict[str, float]] = defaultdict(dict)
        self._counts: Counter[int] = Counter()
        self._thread: threading.Thread | None = None

    def scan(self, *, wait: bool = False) -> None:
        """At start, once `traces/` is made: listed on a thread of its own."""
        self._thread = threading.Thread(target=self._scan, name="epochwatch-owntraces", daemon=True)
        self._thread.start()
        if wait:
            self._thread.join()

    def _scan(self) -> None:
        newest: dict[int, list[tuple[float, str]]] = defaultdict(list)  # min-heaps
        counts: Counter[int] = Counter()
        try:
            with os.scandir(self._traces) as entries:
                for entry in entries:
                    if not entry.name.endswith(".jsonl"):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    counts[st.st_uid] += 1
                    heap = newest[st.st_uid]
                    if len(heap) < MAX_NAMES:
                        heapq.heappush(heap, (st.st_mtime, entry.name))
                    else:
                        heapq.heappushpop(heap, (st.st_mtime, entry.name))
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot list %s (restores under this daemon find no parent): %s", self._traces, exc)
        with self._lock:  # what was added meanwhile is newer: it stays
            for uid, heap in newest.items():
                names = self._by_uid[uid]
                for mtime, name in heap:
                    names.setdefault(name, mtime)
                self._trim(names)
            self._counts.update(counts)

    def add(self, uid: int, name: str, mtime: float | None = None) -> None:
        with self._lock:
            names = self._by_uid[uid]
            names[name] = time.time() if mtime is None else mtime
            self._trim(names)
            self._counts[uid] += 1

    def remove(self, uid: int, name: str) -> None:
        """Its file was removed (a run that left before its first record): the name may
        be given to another uid's run next."""
        with self._lock:
            self._by_uid.get(uid, {}).pop(name, None)
            self._counts[uid] = max(0, self._counts[uid] - 1)

    def count(self, uid: int) -> int:
        with self._lock:
            return self._counts[uid]

    def names(self, uid: int, *, exclude: str = "") -> list[str]:
        """The uid's trace names, newest first."""
        with self._lock:
            names = dict(self._by_uid.get(uid, {}))
        newest = heapq.nlargest(MAX_NAMES, names, key=names.__getitem__)
        return [n for n in newest if n != exclude]

    @staticmethod
    def _trim(names: dict[str, float]) -> None:
        while len(names) > MAX_NAMES:
            del names[min(names, key=names.__getitem__)]
