"""Append whole JSON lines to a trace file.

Each record is serialised by orjson and written with a single `os.write` on an
O_APPEND descriptor, so a killed process leaves only whole lines behind (at worst a
torn last line on a full disk, which the reader tolerates). Nothing is buffered in
user space: a record written is in the kernel and survives the process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _fallback(obj: Any) -> Any:
    """Last resort for values orjson does not know (numpy scalars of odd types, tensors)."""
    for attr in ("item", "tolist"):
        method = getattr(obj, attr, None)
        if callable(method):
            try:
                return method()
            except Exception:
                pass
    return repr(obj)


def dumps_line(record: dict[str, Any]) -> bytes:
    """One record as one line of bytes, newline included."""
    return orjson.dumps(record, default=_fallback, option=_OPTS) + b"\n"


class TraceWriter:
    """Appends records to one trace file; raises OSError (e.g. a full disk) to its caller."""

    def __init__(self, path: str | os.PathLike[str], mode: int = 0o644, *, fd: int | None = None) -> None:
        """Open (creating) `path` for appending, or adopt `fd` already opened on it with
        O_APPEND (the daemon opens its files with O_EXCL | O_NOFOLLOW itself)."""
        self.path = Path(path)
        if fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, mode)
        self._fd: int | None = fd
        self.bytes_written = 0

    def write(self, record: dict[str, Any]) -> None:
        self.write_line(dumps_line(record))

    def write_line(self, line: bytes) -> None:
        """Write bytes that already end in a newline, all of them or raise."""
        if self._fd is None:
            raise ValueError(f"trace {self.path} is closed")
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.bytes_written += len(line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
