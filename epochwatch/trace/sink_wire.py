"""The wire side of the hook's daemon sink (socket_sink.py): connect without waiting,
hello and welcome, the record envelope, and the handover message a fallback sends.

Whoever listens on the socket learns the run's command line, working directory and
environment, so the hook trusts a daemon by what the kernel says of the CONNECTED socket
(SO_PEERCRED: the listener's uid when it called listen), never by a path it looked at
before: every connect and reconnect checks that the peer is root or this user before a
byte is sent (`UntrustedDaemon` otherwise). A symlink flipped between the root daemon's
socket and another user's listener gets a connection and nothing on it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from epochwatch.trace import protocol as p
from epochwatch.trace.client import BadReply, connect, handshake

CONNECT_TIMEOUT = 1.0


class UntrustedDaemon(OSError):
    """The socket's listener is neither root nor this user: nothing was sent to it."""


def check_peer(sock: socket.socket, path: str) -> None:
    """Raise UntrustedDaemon unless the process listening at the other end of the connected
    `sock` runs as root or as this process's effective uid."""
    _, uid, _ = p.peer_credentials(sock)
    me = os.geteuid()
    if uid not in (0, me):
        raise UntrustedDaemon(
            f"the socket {path} is not trusted: its listener runs as uid {uid}, neither root nor you (uid {me})"
        )


def connect_now(path: str) -> socket.socket | None:
    """Connect without waiting, and check the peer: a dead socket (nobody listening) or an
    untrusted listener raises at once; a full backlog gives None (the sender thread
    connects again, blocking there, and checks then)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # not inherited (PEP 446)
    sock.setblocking(False)
    try:
        sock.connect(path)
        check_peer(sock, path)
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
    """Connect (unless `sock` already is) to a trusted peer, say hello, read the welcome;
    returns (non-blocking socket, welcome, bytes after it)."""
    if sock is None:
        sock = connect(path, CONNECT_TIMEOUT)
        try:
            check_peer(sock, path)  # before anything is sent
        except BaseException:
            sock.close()
            raise
    sock, reply, rest = handshake(path, hello, expect=p.OP_WELCOME, timeout=timeout, sock=sock)
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
