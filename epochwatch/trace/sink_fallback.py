"""What the embedded trace holds when the daemon sink falls back to it (socket_sink.py):
the run's header records, a notice saying where the earlier part went (when the daemon
had taken part of the run), and everything the daemon did not acknowledge."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from epochwatch.trace.writer import TraceWriter, dumps_line


def write_embedded(
    writer: TraceWriter,
    pinned: Iterable[tuple[int, bytes]],
    pending: Iterable[tuple[int, bytes]],
    first: int,
    connected_once: bool,
    notice: dict[str, Any] | None,
) -> None:
    """The header records before `first`, `notice`, then `pending`. Lines queued for a
    daemon that never took the run are marked embedded (`as_embedded`)."""
    for seq, line in pinned:
        if seq < first:
            writer.write_line(line if connected_once else as_embedded(line))
    if notice is not None:
        writer.write(notice)
    for _, line in pending:
        writer.write_line(line if connected_once else as_embedded(line))


def as_embedded(line: bytes) -> bytes:
    """A run_start queued for a daemon that never took the run: it was embedded after all."""
    if not line.startswith(b'{"type":"run_start"'):
        return line
    try:
        record = orjson.loads(line)
        record["mode"] = "embedded"
        return dumps_line(record)
    except (orjson.JSONDecodeError, TypeError):
        return line
