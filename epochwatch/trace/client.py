"""The client's side of the daemon socket: one handshake, and the status question on top of it.

The hook's sink (a run), `epochwatch status` and `epochwatch top` (the status role) all
connect the same way: connect, say hello, read the daemon's first line. `handshake`
does that once for all of them and sorts what can go wrong by phase, so each caller
can word it for its own reader: the connect failed (`Unreachable`), the daemon said no
(`DaemonRefused`), it answered with something else (`BadReply`), or the connection
broke on the way (any other OSError, `TimeoutError` included).

`query_status` is the status question for library callers (`top`): every failure is a
`DaemonUnavailable` with one line; the CLI maps it to its exit code.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from epochwatch.trace import protocol as p


class Unreachable(OSError):
    """connect() failed; errno and strerror are the original error's."""


class DaemonRefused(OSError):
    """The daemon answered the hello with an error (its message says why)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class BadReply(ConnectionError):
    """The daemon closed the connection or answered with something that is not the expected reply."""


class DaemonUnavailable(Exception):
    """The daemon cannot be asked; the message is one line for a person."""


def connect(path: str, timeout: float) -> socket.socket:
    """A blocking socket connected to `path` within `timeout` (Unreachable when connect()
    fails); closed on any failure, and not inherited by children (PEP 446)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise Unreachable(exc.errno, exc.strerror or str(exc) or type(exc).__name__) from exc
    except BaseException:
        sock.close()
        raise
    return sock


def handshake(
    path: str,
    hello: dict[str, Any],
    *,
    expect: str,
    timeout: float,
    max_reply: int | None = p.MAX_LINE_BYTES,
    sock: socket.socket | None = None,
) -> tuple[socket.socket, dict[str, Any], bytes]:
    """Connect, say hello, read the reply; returns (blocking socket, reply, bytes after it).

    `expect` is the op the reply must have (welcome for a run, status for a status
    question); `max_reply` caps the reply line (None: no cap). `sock`: a socket already
    connected to `path` (the hook connects at once and says hello later, off the training
    thread). The socket is closed on any failure.
    """
    if sock is None:
        sock = connect(path, timeout)
    try:
        sock.settimeout(timeout)
        sock.sendall(p.encode(hello))
        buf = bytearray()  # a status reply to root may be megabytes: no quadratic joins or scans
        nl = -1
        while nl < 0:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise BadReply("the daemon closed the connection during the hello")
            nl = chunk.find(b"\n")
            if nl >= 0:
                nl += len(buf)
            buf += chunk
            if max_reply is not None and (nl if nl >= 0 else len(buf)) > max_reply:
                raise BadReply(f"the daemon's {expect} is too long")
        line, rest = bytes(buf[:nl]), bytes(buf[nl + 1 :])
        try:
            reply = p.decode(line)
        except ValueError:
            raise BadReply(f"the daemon's {expect} is not JSON") from None
        if reply.get("op") == p.OP_ERROR:
            raise DaemonRefused(str(reply.get("code", "")), str(reply.get("error", "refused")))
        if reply.get("op") != expect:
            raise BadReply(f"the daemon did not answer with a {expect}")
        return sock, reply, rest
    except BaseException:
        sock.close()
        raise


def query_status(path: str, timeout: float = 3.0) -> list[dict[str, Any]]:
    """The runs the daemon at `path` shows this user; raises DaemonUnavailable with one line."""
    try:
        sock, reply, _ = handshake(
            path, p.hello_status(), expect=p.OP_STATUS, timeout=timeout, max_reply=None
        )
    except Unreachable as exc:
        raise DaemonUnavailable(_unreachable(path, exc)) from None
    except DaemonRefused as exc:
        raise DaemonUnavailable(f"the daemon refused: {exc}") from None
    except BadReply:
        raise DaemonUnavailable(f"the daemon at {path} sent something that is not a status reply") from None
    except TimeoutError:
        raise DaemonUnavailable(f"the daemon at {path} did not answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise DaemonUnavailable(f"lost the daemon at {path}: {exc.strerror or exc}") from None
    sock.close()
    runs = reply.get("runs")
    if not isinstance(runs, list):
        raise DaemonUnavailable(f"the daemon at {path} sent something that is not a status reply")
    return runs


def _unreachable(path: str, exc: Unreachable) -> str:
    if exc.errno == errno.ENOENT:
        return f"no daemon socket at {path} (is epochwatch.service running?)"
    if exc.errno == errno.ECONNREFUSED:
        return f"no daemon listening on {path} (connection refused)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"not allowed to connect to {path} (permission denied)"
    return f"cannot connect to {path}: {exc.strerror or exc}"
