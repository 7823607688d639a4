"""Append whole JSON lines to a trace file.

Each record is serialised by orjson and written with a single `os.write` on an
O_APPEND descriptor, so a killed process leaves only whole lines behind. Nothing is
buffered in user space: a record written is in the kernel and survives the process.

A full disk (ENOSPC) or a file size limit (EFBIG) can still cut a write short. The
writer then cuts the file back to the end of the last whole line (ftruncate), and where
even that fails it starts its next record with a newline, so a retried record is never
joined to a torn fragment (which would make the reader skip both). A file that already
ends in a torn line when it is opened (a writer killed mid-line) gets the same newline.

Someone else may cut the file meanwhile (`truncate -s -15`): before each record the
writer compares the file's size with where its own last write ended, and when they differ
and the file no longer ends in a newline, the record starts with one, so the next record
is whole (the cut one is lost, not its successor too).

New files are created 0600 (the umask can only narrow it): a trace holds the command
line and working directory of the run, which other users have no business reading. The
hook creates its traces with O_NOFOLLOW | O_EXCL (`exclusive`) in a directory opened with
O_NOFOLLOW: root running a script in another user's directory does not follow a planted
`epochwatch-traces` symlink, nor write through a planted trace file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Any

import orjson

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
# orjson writes at most this many nested containers (it reads up to 1024): a record
# nested deeper can be parsed but never written, so it is refused where it comes in.
MAX_DEPTH = 254


def _fallback(obj: Any) -> Any:
    """Last resort for values orjson does not know (numpy scalars of odd types, tensors)."""
    for attr in ("item", "tolist"):
        method = getattr(obj, attr, None)
        if callable(method):
            with contextlib.suppress(Exception):
                return method()
    return repr(obj)


def dumps_line(record: dict[str, Any]) -> bytes:
    """One record as one line of bytes, newline included."""
    return orjson.dumps(record, default=_fallback, option=_OPTS) + b"\n"


def may_be_too_deep(line: bytes, limit: int = MAX_DEPTH) -> bool:
    """A cheap test on a JSON line: False means it cannot nest deeper than `limit`.

    A line that parsed closes every bracket it opens, so one under 2 * limit bytes cannot
    nest that deep: most lines are that short and skip the two counts (a third of a bare
    read of short records)."""
    return len(line) > 2 * limit and line.count(b"[") + line.count(b"{") > limit


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests dicts and lists more than `limit` levels deep (iterative)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class TraceWriter:
    """Appends records to one trace file; raises OSError (e.g. a full disk) to its caller."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fd: int | None = None,
        exclusive: bool = False,
    ) -> None:
        """Open (creating) `path` for appending, or adopt `fd` already opened on it with
        O_APPEND (the daemon opens its files with O_EXCL | O_NOFOLLOW itself). Never
        through a symlink, file or directory; `exclusive`: only a file made here and now."""
        self.path = Path(path)
        if fd is None:
            fd = _open_new(self.path, exclusive)
        self._fd: int | None = fd
        self.bytes_written = 0
        # True while the file may end in a partial line: the next write starts with "\n".
        self._torn = _ends_torn(fd, self.path)
        self._end = _size(fd)  # where our last write ended: another size means someone cut it

    def write(self, record: dict[str, Any]) -> None:
        self.write_line(dumps_line(record))

    def write_line(self, line: bytes) -> None:
        """Write bytes that already end in a newline, all of them or raise."""
        if self._fd is None:
            raise ValueError(f"trace {self.path} is closed")
        fd = self._fd
        if not self._torn and _size(fd) != self._end:
            self._torn = _ends_torn(fd, self.path)
        if self._torn:
            line = b"\n" + line
        view = memoryview(line)
        done = 0
        try:
            while done < len(line):
                done += os.write(fd, view[done:])
        except BaseException:
            if done:
                self._cut_back(fd, done)
            raise
        self._torn = False
        self.bytes_written += len(line)
        self._end = _size(fd)

    def _cut_back(self, fd: int, partial: int) -> None:
        """Remove the `partial` bytes a failed write left; else mark the line torn.

        With O_APPEND the file offset is the end of our own last write, so the partial
        line starts exactly `partial` bytes before it (whoever else appends meanwhile).
        """
        try:
            end = os.lseek(fd, 0, os.SEEK_CUR)
            os.ftruncate(fd, end - partial)
            os.lseek(fd, end - partial, os.SEEK_SET)
        except OSError:
            self._torn = True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_new(path: Path, exclusive: bool) -> int:
    """The fd of `path` for appending, made if missing: the directory is opened with
    O_NOFOLLOW (a symlink there is refused, with a message that says so) and the file
    with O_NOFOLLOW, and O_EXCL when `exclusive`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OSError(
                exc.errno, f"the trace directory {path.parent} is a symbolic link; not followed", str(path)
            ) from None
        raise
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path.name, flags | (os.O_EXCL if exclusive else 0), 0o600, dir_fd=dfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(
                exc.errno, f"the trace {path} is a symbolic link; not followed", str(path)
            ) from None
        raise
    finally:
        os.close(dfd)


def _size(fd: int) -> int:
    try:
        return os.fstat(fd).st_size
    except OSError:
        return -1


def _ends_torn(fd: int, path: Path) -> bool:
    """Whether a regular file already holding data does not end in a newline."""
    try:
        st = os.fstat(fd)
        if not st.st_size or not stat.S_ISREG(st.st_mode):
            return False
        with contextlib.suppress(OSError):
            return os.pread(fd, 1, st.st_size - 1) != b"\n"
        rfd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.fstat(rfd).st_ino != st.st_ino:
                return False
            return os.pread(rfd, 1, st.st_size - 1) != b"\n"
        finally:
            os.close(rfd)
    except OSError:
        return False
