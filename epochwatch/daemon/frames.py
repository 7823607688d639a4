"""Length-prefixed messages between the daemon and its per-uid workers (userworker.py).

A frame is a 4-byte big-endian length and that many bytes of a JSON object. The daemon
reads a worker's frames as hostile input: a worker runs as a user, who may signal it, so a
frame over `MAX_FRAME`, a frame that is not a JSON object, or a stream cut in the middle
ends that worker, never the daemon. What is buffered never exceeds one frame.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

MAX_FRAME = 1 << 20
_HEADER = struct.Struct(">I")


class FrameError(ValueError):
    """The peer broke the framing: it is ended."""


def encode(msg: dict[str, Any]) -> bytes:
    body = orjson.dumps(msg)
    if len(body) > MAX_FRAME:
        raise FrameError(f"a message of {len(body)} bytes is over the frame limit")
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Bytes in, whole messages out; holds at most one frame's bytes."""

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self.limit = limit
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """The messages `data` completes; FrameError on a frame too long or not an object."""
        self._buf += data
        out: list[dict[str, Any]] = []
        while len(self._buf) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buf)
            if size > self.limit:
                raise FrameError(f"a frame of {size} bytes is over the limit of {self.limit}")
            if len(self._buf) < _HEADER.size + size:
                break
            body = bytes(self._buf[_HEADER.size : _HEADER.size + size])
            del self._buf[: _HEADER.size + size]
            try:
                msg = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise FrameError(f"a frame that is not JSON: {exc}") from None
            if not isinstance(msg, dict):
                raise FrameError("a frame that is not an object")
            out.append(msg)
        return out
