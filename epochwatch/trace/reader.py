"""Stream records out of trace files, tolerating what crashes and full disks leave behind.

The reader never loads a whole file: it yields one record at a time, so memory is
bounded by the longest line (and lines over MAX_LINE_BYTES are skipped unread).
Damage is counted, not fatal: a torn last line, a line that is not JSON, a JSON value
that is not a record, a record nested deeper than the socket's MAX_DEPTH. A file is unusable only when nothing in it looks like a trace,
or when it was written by a newer schema than this reader knows.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from epochwatch.trace.schema import RUN_START, SCHEMA_VERSION
from epochwatch.trace.writer import MAX_DEPTH, may_be_too_deep, too_deep

MAX_LINE_BYTES = 16 * 1024 * 1024
# How many lines may pass without a single valid record before a file is called foreign.
_FOREIGN_AFTER = 50
_CHUNK = 1 << 20
# No line break in this many bytes from the start: not a trace (a 2 GB file of zeros took
# 26-43 s to be refused after reading it all).
_FOREIGN_BYTES = 64 << 20
# Refused by size before a byte is read: bigger than any trace the daemon writes (1 GiB per
# run by default) by far, or sparse (holes: far fewer blocks on disk than its length).
MAX_TRACE_FILE_BYTES = 64 << 30
_SPARSE_FROM = 64 << 20


def record_of(line: bytes) -> dict[str, Any] | None:
    """One line as a record (a JSON object with a string `type`, nested at most MAX_DEPTH
    deep); None for anything else. For the readers that pick a few records out of a file
    and need no damage counts."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not (isinstance(rec, dict) and isinstance(rec.get("type"), str)):
        return None
    return None if may_be_too_deep(line) and too_deep(rec) else rec


class TraceError(Exception):
    """A file that cannot be read as a trace; the message is one line for the user."""


@dataclass
class ReadStats:
    """What reading one file skipped, so reports can say so instead of hiding it."""

    lines: int = 0
    records: int = 0
    skipped: int = 0
    torn_tail: bool = False
    bytes_read: int = 0
    first_problems: list[str] = field(default_factory=list)
    # Called with each chunk's size as it is read (a progress bar); not part of the stats.
    on_read: Callable[[int], None] | None = field(default=None, repr=False, compare=False)

    def skip(self, lineno: int, why: str) -> None:
        self.skipped += 1
        if len(self.first_problems) < 5:
            self.first_problems.append(f"line {lineno}: {why}")

    def summary(self) -> str:
        if not self.skipped:
            return "no lines skipped"
        tail = " (torn last line)" if self.torn_tail else ""
        return f"skipped {self.skipped} of {self.lines} lines{tail}"


def open_regular(path: str | os.PathLike[str]) -> Any:
    """Open a trace for reading in binary, refusing anything but a regular file.

    A FIFO would block the open until someone writes to it, and a device such as
    /dev/zero never ends: neither is a trace. The open is non-blocking and the check is
    on the opened descriptor (fstat), so nothing can be swapped in between. Raises
    TraceError with a one-line reason.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise TraceError(f"{p}: cannot open ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "special file")
            raise TraceError(f"{p}: not a regular file (a {kind}); only regular files are traces")
        _check_size(p, st, fd)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check_size(p: Path, st: os.stat_result, fd: int) -> None:
    """Refuse, before reading, a file too big to be a trace or one that is mostly holes.

    Few blocks on disk alone is not proof (a compressing file system stores a trace in a
    fraction of its length): a sparse file also has a hole before its end (SEEK_HOLE)."""
    if st.st_size > MAX_TRACE_FILE_BYTES:
        raise TraceError(
            f"{p}: {st.st_size} bytes, over the {MAX_TRACE_FILE_BYTES >> 30} GiB a trace may have; not read"
        )
    on_disk = st.st_blocks * 512
    if st.st_size > _SPARSE_FROM and on_disk < st.st_size // 2 and _has_hole(fd, st.st_size):
        raise TraceError(
            f"{p}: a sparse file ({st.st_size} bytes long, {on_disk} on disk); traces are written "
            "line by line and have no holes; not read"
        )


def _has_hole(fd: int, size: int) -> bool:
    try:
        return os.lseek(fd, 0, os.SEEK_HOLE) < size
    except (OSError, AttributeError):  # no SEEK_HOLE here: the block count decides
        return True
    finally:
        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)


def missing(p: Path) -> str:
    """Why `p` cannot be used though named: the real cause (a symlink loop is not 'no such file')."""
    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ENOENT and os.path.islink(p):
            return f"a symbolic link to {os.readlink(p)!s}, which does not exist"
        return exc.strerror.lower() if exc.strerror else str(exc)
    return "not a file or directory"


_KINDS = {
    stat.S_IFIFO: "FIFO",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
    stat.S_IFDIR: "directory",
}


class _NoLines(Exception):
    """No line break in the first _FOREIGN_BYTES bytes: not a trace."""


def _lines(fh: Any, stats: ReadStats) -> Iterator[tuple[bytes, bool]]:
    """Yield (line, complete) from a binary file, skipping over-long lines without keeping them."""
    buf = b""
    oversize = False
    while True:
        chunk = fh.read(_CHUNK)
        if not chunk:
            break
        stats.bytes_read += len(chunk)
        if stats.on_read is not None:
            stats.on_read(len(chunk))
        # One split in C per chunk, not a find and a slice per line in Python (report reads
        # hundreds of MB: this loop is most of its reading time).
        parts = (buf + chunk if buf else chunk).split(b"\n")
        buf = parts.pop()
        for line in parts:
            if oversize or len(line) > MAX_LINE_BYTES:
                oversize = False
                yield b"", False  # an over-long line: reported once as skipped, never parsed
            else:
                yield line, True
        if len(buf) > MAX_LINE_BYTES:
            buf = b""
            oversize = True
            if stats.lines == 0 and stats.bytes_read > _FOREIGN_BYTES:
                raise _NoLines(stats.bytes_read)
    if oversize:
        yield b"", False
    elif buf:
        yield buf, False


def iter_records(path: str | os.PathLike[str], stats: ReadStats | None = None) -> Iterator[dict[str, Any]]:
    """Yield every valid record of one trace file, counting what was skipped into `stats`.

    Raises TraceError for a file that cannot be opened, is not a trace at all, or was
    written with a newer schema.
    """
    stats = stats if stats is not None else ReadStats()
    p = Path(path)
    fh = open_regular(p)
    with fh:
        try:
            yield from _records(p, fh, stats)
        except _NoLines as exc:
            raise TraceError(
                f"{p}: not an epochwatch trace (no line break in its first {exc} bytes)"
            ) from None


def _records(p: Path, fh: Any, stats: ReadStats) -> Iterator[dict[str, Any]]:
    """The records of an open trace (iter_records' loop)."""
    seen_valid = False
    for line, complete in _lines(fh, stats):
        stats.lines += 1
        lineno = stats.lines
        if not line or line.isspace():
            if not complete and not line:
                stats.skip(lineno, f"longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            if not complete:
                stats.torn_tail = True
                stats.skip(lineno, "torn last line")
            else:
                stats.skip(lineno, "not JSON")
            obj = None
        if obj is not None and not (isinstance(obj, dict) and isinstance(obj.get("type"), str)):
            stats.skip(lineno, "not a record (no string 'type')")
            obj = None
        elif obj is not None and may_be_too_deep(line) and too_deep(obj):
            # No writer of ours writes it (the socket refuses it), and a repr or a recursive
            # walk of it in the analysis had stopped the whole trace (RecursionError). The
            # cheap test on the bytes spares almost every line the walk.
            stats.skip(lineno, f"nested deeper than {MAX_DEPTH} levels")
            obj = None
        if obj is None:
            if not seen_valid and stats.lines >= _FOREIGN_AFTER:
                raise TraceError(f"{p}: not an epochwatch trace (no record in the first {stats.lines} lines)")
            continue
        if obj["type"] == RUN_START:
            _check_schema(p, obj)
        seen_valid = True
        stats.records += 1
        yield obj
    if not seen_valid:
        if stats.lines == 0:
            raise TraceError(f"{p}: empty file")
        raise TraceError(f"{p}: not an epochwatch trace (no valid record in {stats.lines} lines)")


def _check_schema(path: Path, start: dict[str, Any]) -> None:
    schema = start.get("schema")
    if schema is None:
        return
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise TraceError(f"{path}: run_start has a schema version that is not an integer: {schema!r}")
    if schema > SCHEMA_VERSION:
        raise TraceError(
            f"{path}: written with trace schema {schema}, this epochwatch reads up to {SCHEMA_VERSION}; "
            "upgrade epochwatch"
        )


def find_traces(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[str]]:
    """Expand files and directories into trace files; return (files, one-line problems).

    Directories are searched recursively for `*.jsonl` regular files (a FIFO or a device
    named so is passed over), in a stable order, so gathered
    trace trees from many hosts work as they are. A path that does not exist but holds
    glob characters is a pattern (`'hosts/*/traces'`, `'**/*.jsonl'`), for shells that did
    not expand it (quoted, or too many names for one command line).
    """
    files: list[Path] = []
    problems: list[str] = []
    seen: set[str] = set()  # a file named twice (`report d d`, `d d/x.jsonl`) is read once

    def add(q: Path) -> None:
        key = os.path.realpath(q)
        if key not in seen:
            seen.add(key)
            files.append(q)

    for raw in _expand_globs(paths, problems):
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.jsonl") if q.is_file())
            if not found:
                problems.append(f"{p}: no *.jsonl traces in this directory")
            for q in found:
                add(q)
        elif p.exists():
            add(p)
        else:
            problems.append(f"{p}: {missing(p)}")
    return files, list(dict.fromkeys(problems))


def _expand_globs(
    paths: Iterable[str | os.PathLike[str]], problems: list[str]
) -> Iterator[str | os.PathLike[str]]:
    for raw in paths:
        text = os.fspath(raw)
        if not os.path.exists(text) and any(c in text for c in "*?["):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                problems.append(f"{text}: no file or directory matches this pattern")
            yield from matches
        else:
            yield raw
