"""Serve a prometheus_client registry over HTTP from the daemon's own event loop.

Why not prometheus_client's start_http_server: it answers from a thread of its own, and the
collector would then read sessions while the loop changes them: a lock around every change
of daemon state, or a copy kept up to date ahead of scrapes. Here a scrape is one coroutine
on the loop: read the request head (at most MAX_HEAD bytes within READ_TIMEOUT), render with
prometheus_client's own format negotiation (`choose_encoder`: Prometheus text or OpenMetrics,
`name[]` filters, gzip when asked), answer, close. The daemon's shutdown closes the listener
and cancels scrapes in flight.

At most CONCURRENT connections at once, and a slow client cannot hold a place: a new
connection that finds them all taken evicts the oldest one still sending its request head
(any local user can open connections and say nothing; any 8 of them used to block every
scrape until their read timeout). A scraper sends its head at once, so it is answered.

Nothing a client sends can raise into the loop: every problem ends that connection.

The metrics name every user's runs and scripts. With a token (`metrics_token_file`), a
scrape without `Authorization: Bearer <token>` gets 401 and nothing else; without one,
anyone who reaches the port sees everything (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import hmac
import logging
import os
from typing import Any
from urllib.parse import parse_qs

from prometheus_client.exposition import choose_encoder

log = logging.getLogger("epochwatch.daemon")

MAX_HEAD = 16 * 1024
READ_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0
CONCURRENT = 16
PATHS = ("/metrics", "/")
Response = tuple[str, list[tuple[str, str]], bytes]


def read_token(path: str) -> str:
    """The bearer token in `path` (surrounding whitespace dropped); ValueError when unfit."""
    with open(path, "rb") as fh:
        raw = fh.read(4097)
    try:
        token = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ValueError("the token must be printable ASCII") from None
    if len(raw) > 4096 or not token or not token.isprintable() or " " in token:
        raise ValueError("the token must be 1 to 4096 printable ASCII characters without spaces")
    return token


def _authorized(headers: dict[str, str], token: str) -> bool:
    scheme, _, given = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def answer(registry: Any, head: bytes, token: str = "") -> Response:
    """(status, headers, body) for one request head (request line and headers, no body);
    with `token`, only for a request that carries it as a bearer token."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return _plain("400 Bad Request", "not an HTTP request\n")
    method, target = parts[0], parts[1]
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return _plain("400 Bad Request", "malformed header\n")
        headers[name.strip().lower()] = value.strip()
    if method not in ("GET", "HEAD"):
        status, hdrs, body = _plain("405 Method Not Allowed", "use GET\n")
        return status, [*hdrs, ("Allow", "GET, HEAD")], body
    if token and not _authorized(headers, token):
        status, hdrs, body = _plain("401 Unauthorized", "a bearer token is required\n")
        return status, [*hdrs, ("WWW-Authenticate", 'Bearer realm="epochwatch"')], body
    path, _, query = target.partition("?")
    if path not in PATHS:
        return _plain("404 Not Found", "metrics are at /metrics\n")
    encoder, content_type = choose_encoder(headers.get("accept", ""))
    names = parse_qs(query).get("name[]")
    source = registry.restricted_registry(names) if names else registry
    try:
        body = encoder(source)
    except Exception as exc:  # a bug in a collector costs this scrape, not the daemon
        log.error("metrics: scrape failed: %s: %s", type(exc).__name__, exc)
        return _plain("500 Internal Server Error", "collecting metrics failed; see the daemon's log\n")
    out = [("Content-Type", content_type)]
    if "gzip" in headers.get("accept-encoding", "").lower():
        body = gzip.compress(body, compresslevel=1)
        out.append(("Content-Encoding", "gzip"))
    return "200 OK", out, body


def _plain(status: str, text: str) -> Response:
    return status, [("Content-Type", "text/plain; charset=utf-8")], text.encode()


def bind_problem(address: str, port: int, exc: OSError) -> str:
    """One line for an operator whose metrics port cannot be opened."""
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    # asyncio rewrites strerror ("error while attempting to bind on address ..."): use the errno's own
    why = os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)
    if exc.errno == errno.EAFNOSUPPORT:
        why += (
            " (under systemd the unit allows only Unix sockets: install its epochwatch-metrics.conf drop-in"
            " with `epochwatch service install --metrics`)"
        )
    return f"cannot serve metrics on {where}: {why}"


class MetricsServer:
    """HTTP on `address:port` for `registry` (a prometheus_client CollectorRegistry)."""

    def __init__(self, registry: Any, address: str, port: int, *, token: str = "") -> None:
        self.registry = registry
        self.token = token
        self.address = address
        self.port = port
        self._server: asyncio.Server | None = None
        self._active: set[asyncio.Task[Any]] = set()
        # connections still sending their request head, oldest first
        self._reading: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        """Bind and listen; raises OSError (port in use, address unknown, ...)."""
        self._server = await asyncio.start_server(
            self._handle, host=self.address, port=self.port, limit=MAX_HEAD, reuse_address=True
        )

    @property
    def url(self) -> str:
        """Where scrapes go, as bound (port 0 resolved), for the log."""
        if self._server is None or not self._server.sockets:
            return ""
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._active):
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None and len(self._active) >= CONCURRENT and self._reading:
            oldest = next(iter(self._reading))
            self._active.discard(oldest)
            with contextlib.suppress(Exception):  # the slowest talker makes room, unanswered
                self._reading.pop(oldest).transport.abort()
        if task is None or len(self._active) >= CONCURRENT:
            writer.close()
            return
        self._active.add(task)
        self._reading[task] = writer
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                return  # silent, slow, oversized or gone: nothing worth answering
            finally:
                self._reading.pop(task, None)
            status, headers, body = answer(self.registry, head[:-4], self.token)
            lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
            lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
            writer.write("\r\n".join(lines).encode("latin-1"))
            if not head.startswith(b"HEAD "):
                writer.write(body)
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
        except Exception as exc:  # not CancelledError (a BaseException): the shutdown still cancels
            log.debug("metrics: connection dropped: %s: %s", type(exc).__name__, exc)
        finally:
            self._active.discard(task)
            self._reading.pop(task, None)
            with contextlib.suppress(Exception):
                writer.close()
