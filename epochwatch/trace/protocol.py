"""The wire protocol between a hook (or `epochwatch status`) and the daemon.

Newline-delimited JSON over a Unix stream socket, one object per line, at most
MAX_LINE_BYTES per line. The first line a client sends is a hello naming the protocol
version and the role; everything about who the client is comes from the kernel
(SO_PEERCRED), never from the hello. Both sides import this module (it lives below both:
the hook's sink and `status`/`top` connect through `trace/client.py`, the daemon serves it),
so it stays light: no psutil, no asyncio.

    client -> {"op": "hello", "protocol": 1, "role": "run", "run_id": "<wanted>", "token": null}
    daemon -> {"op": "welcome", "protocol": 1, "run_id": "<given>", "token": "<secret>",
               "next_seq": 0, "resumed": false, "trace": "<path>"}
    client -> {"op": "rec", "seq": 0, "record": {...}}        (seq counts from 0, no gaps)
    daemon -> {"op": "ack", "seq": 0}                         (all records <= seq are written)
    client -> {"op": "bye"}                                   (optional, after the last record)

    client -> {"op": "hello", "protocol": 1, "role": "status"}
    daemon -> {"op": "status", "runs": [...]}                 (then the daemon closes)

    daemon -> {"op": "error", "error": "<one line>", "protocol": 1}   (then the daemon closes)

A client that lost its connection says hello again with the token it was given; the
daemon answers with the same run id and `next_seq`, the first record it does not have,
so the client replays from there and nothing is written twice.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import orjson

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 1 << 20

OP_HELLO = "hello"
OP_WELCOME = "welcome"
OP_REC = "rec"
OP_ACK = "ack"
OP_BYE = "bye"
OP_STATUS = "status"
OP_ERROR = "error"

ROLE_RUN = "run"
ROLE_STATUS = "status"

_UCRED = struct.Struct("3i")


def encode(message: dict[str, Any]) -> bytes:
    """One message as one line (newline included)."""
    return orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS) + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """Parse one line; raises ValueError for anything that is not a JSON object."""
    obj = orjson.loads(line)
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel saw it at connect()."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return pid, uid, gid


def hello_run(run_id: str, token: str | None = None, client: str = "") -> dict[str, Any]:
    return {
        "op": OP_HELLO,
        "protocol": PROTOCOL_VERSION,
        "role": ROLE_RUN,
        "run_id": run_id,
        "token": token,
        "client": client,
    }


def hello_status() -> dict[str, Any]:
    return {"op": OP_HELLO, "protocol": PROTOCOL_VERSION, "role": ROLE_STATUS}
