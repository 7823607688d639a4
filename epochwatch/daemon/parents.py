"""Parent traces of a restore, as the daemon may read them: its own traces, its user's runs,
read off the event loop, as the user, in bounded memory.

A restore record names its parent's trace (`parent.trace`), and the online analysis
follows it (analysis/restore/parents.py). In the daemon that record comes from a client,
and the daemon runs as root: following the path would let any user have root read any
file. So only the file name is taken, as a run id, and that run's trace is opened inside
the daemon's traces directory: O_NOFOLLOW, relative to the directory's fd, a regular file
owned by the run's uid (the daemon gives each trace to its run's uid).

That trace is the user's own file, which they can grow at will (a 179 MB parent once
stalled the loop 70 s and grew the daemon by 1.4 GB). So a `ParentLoader` reads parents:
- on its own thread, never the event loop; the run's analysis waits for a parent its
  records named (`prefetch`, `busy`) at most PARENT_WAIT_SECONDS, its records queued;
- opened with the run's uid and gid as the thread's file-system credentials (asuser.py),
  so the open is the user's, not root's;
- incrementally, line by line, up to MAX_PARENT_BYTES of file, keeping only what the
  restore checks read (run_start, fits, epochs, saves, restores, run_end) and at most
  MAX_KEPT_BYTES of it; a parent over either is no parent;
- at most PARENTS_PER_UID parents held per uid and PARENTS_HELD in all (oldest first out),
  and LOADS_PER_MINUTE reads started per uid.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from epochwatch.analysis.restore.parents import ParentCache
from epochwatch.analysis.run import Run
from epochwatch.daemon.asuser import open_users_file
from epochwatch.trace import schema
from epochwatch.trace.reader import record_of
from epochwatch.trace.schema import safe_run_id

log = logging.getLogger("epochwatch.daemon")

MAX_PARENT_BYTES = 64 << 20
MAX_KEPT_BYTES = 4 << 20
MAX_LINE_BYTES = 1 << 20
MAX_PARENT_EPOCHS = 1000
PARENTS_PER_UID = 4
PARENTS_HELD = 16
PARENT_WAIT_SECONDS = 5.0
# Parent reads started per uid per minute: a run naming many parents, or thrashing the
# cache, cannot keep the reader busy for everyone else.
LOADS_PER_MINUTE = 8
_KEPT = frozenset(
    {
        schema.RUN_START,
        schema.FIT_START,
        schema.FIT_END,
        schema.EPOCH,
        schema.SAVE,
        schema.RESTORE,
        schema.RUN_END,
    }
)
Key = tuple[int, str]  # (uid, run id)


class TooBig(Exception):
    """The parent is over a bound: no parent."""


class ParentLoader:
    """The daemon's parent reader: one thread, a bounded cache (see the module docstring).

    `on_loaded(uid)` is called on the event loop's thread when a load of that uid finished,
    so the runs waiting for it are analyzed."""

    def __init__(self, traces: Path, on_loaded: Callable[[int], None]) -> None:
        self.traces = traces
        self._on_loaded = on_loaded
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epochwatch-parents")
        self._held: OrderedDict[Key, Run | None] = OrderedDict()
        self._loading: dict[Key, Future[Run | None]] = {}
        self._started: dict[int, deque[float]] = {}  # uid -> when its latest reads started

    def peek(self, uid: int, gid: int, run_id: str) -> Run | None:
        """The parent if loaded; else None, and its load started."""
        key = (uid, run_id)
        if key in self._held:
            self._held.move_to_end(key)
            return self._held[key]
        self.load(uid, gid, run_id)
        return self._held.get(key)  # read already where there is no event loop

    def load(self, uid: int, gid: int, run_id: str) -> None:
        key = (uid, run_id)
        if key in self._held or key in self._loading or not self._may_start(uid):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a test, a tool): read here
            future: Future[Run | None] = Future()
            try:
                future.set_result(read_as(self.traces, run_id, uid, gid))
            except Exception as exc:
                future.set_exception(exc)
            self._done(key, future)
            return
        future = self._pool.submit(read_as, self.traces, run_id, uid, gid)
        self._loading[key] = future
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._done, key, f))

    def _may_start(self, uid: int) -> bool:
        """Whether `uid` may start another read now (LOADS_PER_MINUTE); counts it if so."""
        now = time.monotonic()
        started = self._started.setdefault(uid, deque(maxlen=LOADS_PER_MINUTE))
        if len(started) == LOADS_PER_MINUTE and now - started[0] < 60.0:
            return False
        started.append(now)
        return True

    def busy(self, uid: int, run_ids: set[str]) -> bool:
        return any((uid, r) in self._loading for r in run_ids)

    def _done(self, key: Key, future: Future[Run | None]) -> None:
        self._loading.pop(key, None)
        try:
            run = future.result()
        except TooBig as exc:
            log.warning("uid %d: parent trace %s not used: %s", key[0], key[1], exc)
            run = None
        except Exception as exc:
            log.warning("uid %d: parent trace %s not read: %s: %s", key[0], key[1], type(exc).__name__, exc)
            run = None
        self._held[key] = run
        mine = [k for k in self._held if k[0] == key[0]]
        for old in mine[: max(0, len(mine) - PARENTS_PER_UID)]:
            del self._held[old]
        while len(self._held) > PARENTS_HELD:
            self._held.popitem(last=False)
        self._on_loaded(key[0])

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class DaemonParents(ParentCache):
    """One run's view of the loader: parents by run id, of the run's own uid only."""

    def __init__(self, loader: ParentLoader, uid: int, gid: int) -> None:
        super().__init__()
        self.loader = loader
        self.uid = uid
        self.gid = gid
        self.named: set[str] = set()  # run ids this run's restores named

    def get(self, path: Path) -> Run | None:
        run_id = run_id_of(str(path))
        return self.loader.peek(self.uid, self.gid, run_id) if run_id else None

    def prefetch(self, trace: object) -> None:
        """A restore record named `trace`: start reading it before its epochs are judged."""
        run_id = run_id_of(trace) if isinstance(trace, str) else None
        if run_id and len(self.named) < PARENTS_PER_UID * 4:
            self.named.add(run_id)
            self.loader.load(self.uid, self.gid, run_id)

    @property
    def busy(self) -> bool:
        return self.loader.busy(self.uid, self.named)


def run_id_of(path: str) -> str | None:
    name = Path(path).name
    run_id = name[: -len(".jsonl")] if name.endswith(".jsonl") else ""
    return run_id if run_id and safe_run_id(run_id) == run_id else None


def read_as(traces: Path, run_id: str, uid: int, gid: int) -> Run | None:
    """On the loader's thread: the parent run, opened with the user's file-system rights."""
    fd = open_users_file(traces, f"{run_id}.jsonl", uid, gid)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if st.st_size > MAX_PARENT_BYTES:
            raise TooBig(f"{st.st_size} bytes, over the limit of {MAX_PARENT_BYTES}")
        run = Run(run_id=run_id, path=traces / f"{run_id}.jsonl", max_epoch_records=MAX_PARENT_EPOCHS)
        kept = 0
        for line in _lines(fh):
            if b'"type"' not in line:
                continue
            rec = record_of(line)
            if rec is None or rec["type"] not in _KEPT:
                continue
            kept += len(line)
            if kept > MAX_KEPT_BYTES:
                raise TooBig(f"over {MAX_KEPT_BYTES} bytes of records to keep")
            run.add(rec)
    return run if run.start is not None else None


def _lines(fh: object) -> Iterator[bytes]:
    """Whole lines of at most MAX_LINE_BYTES (longer ones skipped), up to MAX_PARENT_BYTES
    read in all: a file that grows while it is read is cut there."""
    read = 0
    skipping = False
    readline = fh.readline  # type: ignore[attr-defined]
    while read < MAX_PARENT_BYTES:
        line = readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        read += len(line)
        whole = line.endswith(b"\n")
        if not skipping and whole:
            yield line
        skipping = not whole
    raise TooBig(f"still going after {MAX_PARENT_BYTES} bytes")
