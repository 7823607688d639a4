"""The wire side of the hook's daemon sink (socket_sink.py): connect without waiting,
hello and welcome, the record envelope, and the handover message a fallback sends."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from epochwatch.trace import protocol as p
from epochwatch.trace.client import BadReply, handshake

CONNECT_TIMEOUT = 1.0


def connect_now(path: str) -> socket.socket | None:
    """Connect without waiting: a dead socket (nobody listening) raises at once; a full
    backlog gives None (the sender thread connects again, blocking there)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # not inherited (PEP 446)
    sock.setblocking(False)
    try:
        sock.connect(path)
    except BlockingIOError:
        sock.close()
        return None
    except BaseException:
        sock.close()
        raise
    return sock


def handshake_run(
    path: str, hello: dict[str, Any], timeout: float, sock: socket.socket | None = None
) -> tuple[socket.socket, dict[str, Any], bytes]:
    """Connect (unless `sock` already is), say hello, read the welcome; returns (non-blocking
    socket, welcome, bytes after it)."""
    sock, reply, rest = handshake(
        path, hello, expect=p.OP_WELCOME, timeout=timeout, connect_timeout=CONNECT_TIMEOUT, sock=sock
    )
    if not isinstance(reply.get("run_id"), str):
        sock.close()
        raise BadReply("the daemon did not answer with a welcome")
    sock.setblocking(False)
    return sock, reply, rest


def envelope(seq: int, line: bytes) -> bytes:
    return b'{"op":"rec","seq":%d,"record":%s}\n' % (seq, line[:-1])


def send_handover(sock: socket.socket, first: int) -> None:
    """Tell a daemon that may still hold unread records of this run (it stalled) that the
    records from `first` on are the embedded trace's now: it drops them instead of writing
    them twice. Never waits: a full socket buffer loses the message, not time."""
    with contextlib.suppress(OSError):
        # the newline ends a record line the sender may have left half sent
        sock.send(b"\n" + p.encode({"op": p.OP_HANDOVER, "seq": first}), socket.MSG_DONTWAIT)


def client_name() -> str:
    from epochwatch import __version__

    return f"epochwatch {__version__}"
