"""Following trace files as they grow: remember each file's offset, read only new bytes.

A refresh costs one directory scan and one stat per trace, plus reading what was
appended since the last refresh. A trace seen for the first time is not read from the
start when it is large: its first line (run_start: who, what, limits) and its last
FIRST_TAIL bytes are enough for the newest epochs and the sparkline. Reads per refresh
are capped (BUDGET), so a burst of appends or a huge new file never freezes the screen:
the rest is read on the next refresh.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from epochwatch.top.model import RunState
from epochwatch.trace.reader import record_of

FIRST_TAIL = 4 << 20  # a new, large trace: read only its head line and this much of its end
BUDGET = 16 << 20  # bytes read per file per refresh
HEAD = 1 << 20  # how far into a file its first line may end
MAX_LINE = 16 << 20


@dataclass
class TraceTail:
    """One trace file and the run folded from it."""

    path: Path
    state: RunState
    offset: int = 0
    partial: bytes = b""
    inode: int | None = None
    lines: int = 0
    skipped: int = 0
    started: bool = field(default=False)

    def poll(self, budget: int = BUDGET) -> int:
        """Read what was appended since the last poll; returns the bytes read."""
        try:
            st = os.stat(self.path)
        except OSError:
            return 0
        if self.inode is not None and (st.st_ino != self.inode or st.st_size < self.offset):
            self._reset()  # replaced or truncated: start over
        self.inode = st.st_ino
        if st.st_size == self.offset:
            return 0
        try:
            with open(self.path, "rb") as fh:
                if not self.started:
                    self._first_look(fh, st.st_size)
                fh.seek(self.offset)
                data = fh.read(min(budget, st.st_size - self.offset))
        except OSError:
            return 0
        self.offset += len(data)
        self._feed(data)
        return len(data)

    def _reset(self) -> None:
        self.state = RunState(run_id=self.state.run_id)
        self.offset, self.partial, self.started = 0, b"", False

    def _first_look(self, fh: object, size: int) -> None:
        """A large file: fold its first line in, then continue near its end."""
        self.started = True
        if size <= FIRST_TAIL:
            return
        head = fh.read(HEAD)  # type: ignore[attr-defined]
        nl = head.find(b"\n")
        if nl > 0:
            self._line(head[:nl])
        start = size - FIRST_TAIL
        self.state.partial = True  # what it counts (epochs, retraces) starts near the end
        fh.seek(start - 1)  # type: ignore[attr-defined]
        back = fh.read(FIRST_TAIL)  # type: ignore[attr-defined]
        cut = back.find(b"\n")  # the first whole line after `start`
        self.offset = start + cut if cut >= 0 else size

    def _feed(self, data: bytes) -> None:
        buf = self.partial + data
        lines = buf.split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > MAX_LINE:
            self.partial = b""
            self.skipped += 1
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        if not line.strip():
            return
        self.lines += 1
        rec = record_of(line)  # not JSON, not a record or nested too deep: skipped
        if rec is None:
            self.skipped += 1
            return
        if rec["type"] == "run_start" and isinstance(rec.get("run_id"), str):
            self.state.run_id = rec["run_id"]
        self.state.add(rec)


def newest(paths: Iterable[Path], limit: int) -> list[tuple[float, Path]]:
    """The `limit` most recently modified of `paths`, newest first."""
    stamped = []
    for p in paths:
        try:
            stamped.append((os.stat(p).st_mtime, p))
        except OSError:
            continue
    stamped.sort(reverse=True)
    return stamped[:limit]


class DirSource:
    """The newest traces in a directory, followed as they grow."""

    def __init__(self, directory: str | os.PathLike[str], limit: int = 30) -> None:
        self.directory = Path(directory)
        self.limit = limit
        self.tails: dict[Path, TraceTail] = {}
        self.error: str | None = None

    @property
    def label(self) -> str:
        return f"traces in {self.directory}"

    def poll(self) -> list[RunState]:
        try:
            names = [self.directory / e.name for e in os.scandir(self.directory) if e.name.endswith(".jsonl")]
            self.error = None
        except FileNotFoundError:
            self.error = f"{self.directory} does not exist (yet): waiting for traces"
            names = []
        except OSError as exc:
            self.error = f"cannot list {self.directory}: {exc.strerror or exc}"
            names = []
        keep = [p for _, p in newest(names, self.limit)]  # the others are forgotten
        self.tails = {p: self.tails.get(p) or TraceTail(p, RunState(run_id=p.stem)) for p in keep}
        for tail in self.tails.values():
            tail.poll()
            mark_gone(tail.state)
        return [tail.state for tail in self.tails.values()]


def mark_gone(state: RunState, hostname: str | None = None) -> None:
    """A run without run_end whose process (on this host) has exited: killed, OOM, crashed."""
    if state.ended is not None or state.gone or state.pid is None or state.hostname is None:
        return
    if state.hostname != (hostname or socket.gethostname()):
        return
    try:
        created = psutil.Process(state.pid).create_time()
    except psutil.NoSuchProcess:
        state.gone = True
        return
    except (psutil.Error, OSError):
        return
    if state.started is not None and created > state.started + 1.0:  # the pid was reused
        state.gone = True
