"""One client connection: framing, the hello, limits, and never trusting a byte of it.

Lines are split here with a hard cap (`limits.max_line_bytes`): a longer line drops the
connection before it is buffered whole, and what a connection holds unread counts against
its uid's and the daemon's buffered bytes (limits.py): over either, it is dropped. Bytes
count against the uid's byte rate as they arrive. The first line must be a hello within
`limits.hello_timeout_seconds`. Who the client is comes from SO_PEERCRED at accept time.
Every problem a client can cause ends in one log line (rate-limited per uid: lograte.py)
and, at worst, its own connection closed; nothing here raises into the event loop.

The runs themselves are the registry's: a connection hands it the hello, each batch of
records it read (with a `bye` that ends them) and its own end, and is a Peer to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch.trace import protocol as p
from epochwatch.trace.writer import MAX_DEPTH, may_be_too_deep, too_deep

if TYPE_CHECKING:
    from epochwatch.daemon.limits import UidLimits
    from epochwatch.daemon.registry import RunRegistry
    from epochwatch.daemon.session import Record, Session

log = logging.getLogger("epochwatch.daemon")

MAX_SEQ = 1 << 53  # a seq past it could not be said back (2**64 - 1 made a welcome no encoder wrote)
MAX_BAD_LINES = 20  # invalid lines tolerated on one connection before it is dropped
MAX_WRITE_BUFFER = 1 << 20  # a client that does not read its acks is dropped past this


class Connection(asyncio.Protocol):
    def __init__(
        self, registry: RunRegistry, limits: UidLimits, on_lost: Callable[[Connection], None]
    ) -> None:
        self.registry = registry
        self.limits = limits
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.pid = self.uid = self.gid = -1
        self.counted = False
        self.role: str | None = None
        self.session: Session | None = None
        self._buf = bytearray()
        self._held = 0  # bytes of _buf counted against the uid's buffered bytes
        self._hello_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None  # a status reply's, to be read
        self._reply_held = 0  # its bytes, counted against the uid's buffered bytes
        self._resume_handle: asyncio.TimerHandle | None = None
        self._bad_lines = 0
        self._handover: int | None = None  # the hook took the records from this seq on
        self._throttled_logged = False
        self.closed = False

    # -- who ----------------------------------------------------------------------------------

    def _warn(self, msg: str, *args: object) -> None:
        """A log line about this client (`msg`'s first %s is who it is), rate-limited per uid."""
        self.limits.log.warning(self.uid, msg, self.who(), *args)

    def who(self) -> str:
        if self.session is not None:
            return f"run {self.session.run_id} (pid {self.pid}, uid {self.uid})"
        return f"client pid {self.pid} uid {self.uid}"

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        try:
            self.pid, self.uid, self.gid = p.peer_credentials(sock)
        except OSError as exc:
            log.warning("connection without peer credentials (%s); dropped", exc)
            transport.abort()
            self.closed = True
            return
        refused = self.limits.open_connection(self.uid)
        if refused:
            self._warn("%s refused: %s", refused)
            self.fail("limit", refused)
            return
        self.counted = True
        timeout = self.limits.cfg.hello_timeout_seconds
        self._hello_timer = asyncio.get_running_loop().call_later(timeout, self._no_hello, timeout)

    def data_received(self, data: bytes) -> None:
        if not self.closed:
            self._guarded(self._take, data)

    def _guarded(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a bug here must cost this connection, never the daemon
            # With its traceback, rate-limited like every line a uid's clients cause.
            self.limits.log.log(
                logging.ERROR, self.uid, "%s: internal error; connection dropped", self.who(), exc_info=True
            )
            self.fail("internal", "internal error in the daemon")

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._on_lost(self)
        for handle in (self._hello_timer, self._resume_handle, self._drain_timer):
            if handle is not None:
                handle.cancel()
        if self._reply_held:
            self.limits.hold(self.uid, -self._reply_held)
            self._reply_held = 0
        self._buf.clear()
        self._account()
        if self.counted:
            self.counted = False
            self.limits.close_connection(self.uid)
        if self.session is not None:
            session, self.session = self.session, None
            self.registry.detach(session, self)

    # -- framing --------------------------------------------------------------------------------

    def _take(self, data: bytes) -> None:
        """Bytes count against the uid's byte rate as they arrive, whole lines or not: a
        user sending lines that never end or are too long (1 GB in a minute) is read as
        slowly as one sending records, so it cannot take the event loop from other users."""
        self._buf += data
        pause = self.limits.take(self.uid, 0, len(data))
        if self._resume_handle is None:  # while throttled, lines wait in the buffer
            self._process(pause)
        else:
            self._account()

    def _account(self) -> None:
        """Count what the buffer holds now against the uid's buffered bytes; over the
        limit, the connection goes (and gives its bytes back)."""
        if not self.counted:
            return
        delta = len(self._buf) - self._held
        self._held = len(self._buf)
        refused = self.limits.hold(self.uid, delta) if delta else None
        if refused and not self.closed:
            self._warn("%s: %s; dropped", refused)
            self._buf.clear()
            self.fail("buffered", refused)
            self._account()

    def _process(self, pause: float = 0.0) -> None:
        """Handle the complete lines in the buffer, one rate-limit token each.

        The records among them go to the registry as one batch when reading stops (the
        buffer is done, the rate is spent, the client said bye or was dropped): it writes
        them, acknowledges them, then analyzes them. Over the uid's rate, the rest stays
        buffered, reading pauses, and `_resume` carries on later: the limit holds per
        message, however the bytes arrived.
        """
        batch: list[tuple[int, Record]] = []
        bye, byte_pause = False, pause
        try:
            bye, pause = self._read_lines(batch)
            pause = max(pause, byte_pause) if not bye else 0.0
        finally:
            if (batch or bye) and self.session is not None:
                self.registry.deliver(self.session, self, batch, bye=bye, handover=self._handover)
        self._account()
        if pause > 0:
            self._throttle(pause)

    def _read_lines(self, batch: list[tuple[int, Record]]) -> tuple[bool, float]:
        """Take lines until the buffer, the rate or the connection ends; (bye, pause)."""
        buf = self._buf
        limit = self.limits.cfg.max_line_bytes
        start = 0
        pause = 0.0
        while not self.closed:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            if nl - start > limit:
                self._too_long(nl - start)
                return False, 0.0
            line = bytes(buf[start:nl])
            start = nl + 1
            if line.strip():
                bye = self._line(line, batch)
                pause = self.limits.take(self.uid, 1)  # its bytes were counted as they came
                if bye:
                    return True, 0.0
                if pause > 0:
                    break
        if self.closed:
            return False, 0.0
        del buf[:start]
        if len(buf) > limit and b"\n" not in buf:
            self._too_long(len(buf))
            return False, 0.0
        return False, pause

    def _too_long(self, size: int) -> None:
        limit = self.limits.cfg.max_line_bytes
        self._warn("%s sent a line over %d bytes (%d so far); dropped", limit, size)
        self._buf.clear()
        self.fail("too_long", f"line longer than {limit} bytes")

    def _throttle(self, pause: float) -> None:
        if self.transport is None or self.closed:
            return
        if not self._throttled_logged:
            self._throttled_logged = True
            self._warn(
                "%s is over the message rate or the byte rate of its uid; reading from it more slowly",
            )
        self.transport.pause_reading()
        self._resume_handle = asyncio.get_running_loop().call_later(min(pause, 5.0), self._resume)

    def _resume(self) -> None:
        self._resume_handle = None
        if self.closed or self.transport is None:
            return
        self.transport.resume_reading()
        self._guarded(self._process)

    def _line(self, line: bytes, batch: list[tuple[int, Record]]) -> bool:
        """One message; True when it is the run's bye (nothing after it is read)."""
        try:
            msg = p.decode(line)
        except ValueError as exc:
            self._bad(f"not valid JSON ({str(exc).splitlines()[0][:120]})")
            return False
        op = msg.get("op")
        if self.role is None:
            self._hello(msg)
        elif op == p.OP_REC and self.session is not None:
            if may_be_too_deep(line) and too_deep(msg.get("record")):  # parsed, but could never be written
                self._warn("%s sent a record nested deeper than %d levels; dropped", MAX_DEPTH)
                self.fail("too_deep", f"a record nested deeper than {MAX_DEPTH} levels")
                return False
            self._record(msg, batch)
        elif op == p.OP_BYE and self.session is not None:
            return True
        elif op == p.OP_HANDOVER and self.session is not None:
            seq = msg.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
                self._handover = seq
                return True  # like bye: the run's last message here
            self._bad("a handover without a valid seq")
        else:
            self._bad(f"unexpected message op={str(op)[:40]!r}")
        return False

    def _bad(self, why: str) -> None:
        self._bad_lines += 1
        if self.role is None:
            self._warn("%s: first line is not a hello: %s; dropped", why)
            self.fail("bad_hello", f"the first line must be a hello: {why}")
            return
        if self._bad_lines == 1:
            self._warn("%s: %s; skipped (further bad lines are counted, not logged)", why)
        if self._bad_lines >= MAX_BAD_LINES:
            self._warn("%s: %d bad lines; dropped", self._bad_lines)
            self.fail("bad_lines", f"{self._bad_lines} invalid lines")

    # -- messages -------------------------------------------------------------------------------

    def _no_hello(self, timeout: float) -> None:
        self._hello_timer = None
        if self.role is None and not self.closed:
            said = f"sent {len(self._buf)} bytes but no hello line" if self._buf else "said nothing"
            self._warn("%s %s within %.0f s; dropped", said, timeout)
            self.fail("timeout", f"no hello within {timeout:.0f} s")

    def _hello(self, msg: dict[str, Any]) -> None:
        if msg.get("op") != p.OP_HELLO:
            self._bad(f"op is {str(msg.get('op'))[:40]!r}, not 'hello'")
            return
        version = msg.get("protocol")
        if type(version) is not int or version != p.PROTOCOL_VERSION:  # not true, not 1.0
            self._warn(
                "%s speaks protocol %s; this daemon speaks %d; dropped",
                repr(version)[:40],
                p.PROTOCOL_VERSION,
            )
            self.fail(
                "protocol",
                f"unsupported protocol version {repr(version)[:40]}; this daemon speaks {p.PROTOCOL_VERSION} "
                "(upgrade epochwatch on one side)",
            )
            return
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None
        role = msg.get("role")
        if role == p.ROLE_STATUS:
            self.role = role
            self._status()
        elif role == p.ROLE_RUN:
            self.role = role
            self.session = self.registry.attach(self, msg)
        else:
            self._bad(f"unknown role {str(role)[:40]!r}")

    def _status(self) -> None:
        """The status reply, then hang up. It is sent whatever the client's unread backlog,
        so its bytes count against the uid's buffered bytes until the connection ends (root's
        are counted, never refused), and a client that has not read it within the hello's
        timeout is cut off: 150 status connections that never read held 1.7 GB."""
        reply = p.encode(
            {"op": p.OP_STATUS, "protocol": p.PROTOCOL_VERSION, "runs": self.registry.status_for(self.uid)}
        )
        refused = self.limits.hold(self.uid, len(reply))
        self._reply_held = len(reply)
        if refused and self.uid != 0:
            self._warn("%s: status refused: %s", refused)
            self.fail("limit", refused)
            return
        if self.transport is not None and not self.closed:
            self.transport.write(reply)
            drain = self.limits.cfg.hello_timeout_seconds  # as long as a client may take to say hello
            self._drain_timer = asyncio.get_running_loop().call_later(drain, self._not_drained)
        self.close()

    def _not_drained(self) -> None:
        if self.transport is not None:
            self._warn("%s did not read its status reply; cut off")
            self.transport.abort()

    def _record(self, msg: dict[str, Any], batch: list[tuple[int, Record]]) -> None:
        seq, rec = msg.get("seq"), msg.get("record")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < MAX_SEQ:
            self._bad("a record without a valid seq")
            return
        if not isinstance(rec, dict) or not isinstance(rec.get("type"), str):
            self._bad("a record that is not an object with a string 'type'")
            return
        batch.append((seq, rec))

    # -- replies (the Peer the registry sees) -------------------------------------------------

    def send(self, msg: dict[str, Any]) -> None:
        """Write one message. A client that lets MAX_WRITE_BUFFER pile up unread is dropped."""
        if self.transport is None or self.closed:
            return
        self.transport.write(p.encode(msg))
        if self.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self._warn("%s does not read what the daemon sends; dropped")
            self.transport.abort()
            self.closed = True

    def fail(self, code: str, message: str) -> None:
        """Tell the client why in one message, then hang up; the registry hears of it in
        `connection_lost` (detach), as of any connection that ends."""
        self.send({"op": p.OP_ERROR, "protocol": p.PROTOCOL_VERSION, "code": code, "error": message})
        self._hang_up()

    def close(self) -> None:
        """Hang up at the registry's (or the server's) request: the run is no longer ours,
        so no detach follows."""
        self.session = None
        self._hang_up()

    def _hang_up(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        self.closed = True
