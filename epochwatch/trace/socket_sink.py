"""The hook's side of the daemon socket: records out, never blocking training.

`write()` serialises the record, appends it to a bounded in-memory queue and wakes a
background daemon thread; that is all the training thread ever does. Even the first
connection and hello happen on that thread, so a daemon that accepts and then stalls
costs the training nothing: records queue meanwhile. The thread sends records, reads
the daemon's acks and forgets what is acked. Findings the daemon makes for the run come
back as `finding` messages and go to `on_finding` (the console). Records are numbered
(`seq`), so after a lost connection (a daemon restart, say) the thread reconnects with
backoff, says hello with the run's token, and replays from the first record the daemon
does not have: a restart loses nothing and writes nothing twice.

Reconnects back off exponentially (BACKOFF_FIRST doubling to BACKOFF_MAX, with jitter)
and the backoff only resets once a connection made progress (an ack), so a daemon that
welcomes the run and drops it at once (its disk is full) sees a few hellos a second at
most, not thousands; new records do not cut a wait short. What the daemon said when it
dropped the run is said once. Every connect checks who listens (sink_wire.check_peer:
root or this user, by SO_PEERCRED) before a byte is sent; anyone else means the embedded
trace from then on.

If the first hello fails (refused, or no answer within HANDSHAKE_TIMEOUT), or the
daemon does not take the run back (acknowledge records) within the grace period
(EPOCHWATCH_DAEMON_GRACE, default 30 s), or is still away when the process exits, the
sink falls back to the embedded trace ($EPOCHWATCH_DIR/<run_id>.jsonl): the run's header
records, a notice saying where the earlier part went, and everything not yet
acknowledged; later records are written there directly. It says so once on stderr.

Bounds: at most MAX_PENDING records / MAX_PENDING_BYTES wait unacknowledged; past that
the oldest are dropped (the daemon notes the gap in the trace). `close()` waits at most
CLOSE_TIMEOUT seconds. The thread is a daemon thread: it never keeps a process alive.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from epochwatch.guard import say
from epochwatch.trace import protocol as p
from epochwatch.trace import schema
from epochwatch.trace.client import DaemonRefused
from epochwatch.trace.sink_fallback import as_embedded, write_embedded
from epochwatch.trace.sink_wire import (
    UntrustedDaemon,
    client_name,
    connect_now,
    envelope,
    handshake_run,
    send_handover,
)
from epochwatch.trace.writer import TraceWriter, dumps_line

HANDSHAKE_TIMEOUT = 3.0
DEFAULT_GRACE = 30.0
CLOSE_TIMEOUT = 3.0
MAX_PENDING = 10_000
MAX_PENDING_BYTES = 64 << 20
MAX_PINNED = 64
MAX_OWN_TRACES = 200  # names of the user's other traces taken from a welcome
BACKOFF_FIRST, BACKOFF_MAX = 0.05, 2.0
_PINNED_TYPES = frozenset({"run_start", "fit_start", "watch"})


class SocketSink:
    """A Sink (see trace/sink.py) that sends records to the host daemon."""

    mode = "daemon"  # run_start.mode; the daemon sets it too

    def __init__(
        self,
        path: str,
        run_id: str,
        fallback_dir: str | os.PathLike[str],
        *,
        grace: float = DEFAULT_GRACE,
        close_timeout: float = CLOSE_TIMEOUT,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self.path = path
        self.run_id = run_id
        self.fallback_dir = Path(fallback_dir)
        self.grace = grace
        self.close_timeout = close_timeout
        self.max_pending_bytes = max_pending_bytes
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, bytes]] = deque()  # (seq, record line), not yet acked
        self._pending_bytes = 0
        self._pinned: list[tuple[int, bytes]] = []
        self._seq = 0
        self._acked = -1
        self._sent_upto = -1
        self.dropped = 0
        self._file: TraceWriter | None = None
        self._closing = False
        self._closed = False
        self._dead = False  # nowhere left to write: records are dropped
        self._close_deadline = float("inf")
        self._disconnected_at: float | None = None
        self._resend_pinned = False
        self._connected_once = False
        self._backoff = BACKOFF_FIRST  # the next reconnect's first wait; reset by progress
        self._said_drop = False
        self.reconnects = 0
        self.cpu_seconds = 0.0  # the sender thread's CPU time so far: the hook's overhead counts it
        self.daemon_run_id = ""
        self.token = ""
        self.daemon_trace = ""
        self.own_traces: tuple[str, ...] = ()
        self._answered = threading.Event()  # welcomed, or fallen back: where the trace is is known
        self.description = f"daemon at {path} (connecting)"
        self._sock: socket.socket | None = None
        self._inbuf = bytearray()
        # Only the hello may stall; a socket nobody listens on is refused here, at once.
        self._first: socket.socket | None = connect_now(path)
        self.on_finding: Callable[[dict[str, Any]], None] | None = None
        self._wake_r, self._wake_w = os.pipe()  # not inherited (PEP 446)
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="epochwatch-sink", daemon=True)
        self._thread.start()

    def _welcome(self, welcome: dict[str, Any]) -> None:
        self.daemon_run_id = str(welcome["run_id"])
        self.token = str(welcome.get("token") or "")
        self.daemon_trace = str(welcome.get("trace") or "")
        self.own_traces = _own_traces(welcome.get("own_traces"), self.daemon_trace)
        self._answered.set()
        self.description = f"daemon at {self.path} (run {self.daemon_run_id}, trace {self.daemon_trace})"

    def wait_answer(self, timeout: float) -> None:
        """Until the daemon's welcome (or the fallback): off the training thread only."""
        self._answered.wait(timeout)

    # -- the training thread's side --------------------------------------------------------------

    @property
    def remote_detection(self) -> bool:
        """True while the daemon runs the online detectors for this run (the hook need not)."""
        return self._file is None

    @property
    def trace_path(self) -> str:
        """The daemon's trace of this run; the embedded file after a fallback."""
        file = self._file
        return str(file.path.resolve()) if file is not None else self.daemon_trace

    def write(self, record: dict[str, Any]) -> None:
        """Queue one record; never blocks on the daemon. After a fallback, writes the file."""
        if os.getpid() != self._pid or self._closed or self._dead:
            return  # a forked child has no sender thread; its parent owns the run
        line = dumps_line(record)
        with self._lock:
            file = self._file
            if file is None:
                seq = self._seq
                self._seq += 1
                self._pending.append((seq, line))
                self._pending_bytes += len(line)
                if record.get("type") in _PINNED_TYPES and len(self._pinned) < MAX_PINNED:
                    self._pinned.append((seq, line))
                while len(self._pending) > MAX_PENDING or self._pending_bytes > self.max_pending_bytes:
                    _, old = self._pending.popleft()
                    self._pending_bytes -= len(old)
                    self.dropped += 1
        if file is not None:
            if not self._connected_once:  # the daemon never took the run: it is embedded after all
                line = as_embedded(line)
            file.write_line(line)  # as in embedded mode: an OSError reaches the hook's guard
        else:
            self._wake()

    def close(self) -> None:
        """Flush within close_timeout (fallback file for what the daemon did not take), then stop."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() != self._pid:
            self._release_in_child()
            return
        with self._lock:
            self._closing = True
            self._close_deadline = time.monotonic() + self.close_timeout
        self._wake()
        self._thread.join(self.close_timeout + 1.0)
        with self._lock:
            left = bool(self._pending) and self._file is None
        if left:
            self._fall_back("the daemon did not take the last records before the process exited")
        sock = self._sock
        if sock is not None and not self._thread.is_alive():
            self._sock = None
            sock.close()
        if self._file is not None:
            self._file.close()
        if not self._thread.is_alive():  # a stuck thread may still select on the pipe
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _release_in_child(self) -> None:
        """A forked child's copies of the parent's connection, file and wake pipe: closed,
        nothing sent (a close drops this process's reference only). Kept open, they held
        the parent's connection up after the parent died, for as long as the child lived."""
        for held in (self._sock, self._file):
            if held is not None:
                with contextlib.suppress(OSError):
                    held.close()
        self._sock = self._file = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # -- the sender thread -------------------------------------------------------------------------

    def _run(self) -> None:
        first, self._first = self._first, None
        try:
            self._resume(first)
        except Exception as exc:  # refused, no answer, no socket: the run is traced here instead
            reason = (
                exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            )
            self._fall_back(f"daemon at {self.path} not usable ({reason})")
            return
        try:
            self._loop()
        except Exception as exc:  # never into the training process; keep the records
            self._drop_connection()
            self._fall_back(f"the daemon sender failed ({type(exc).__name__}: {exc})")

    def _loop(self) -> None:
        out = bytearray()
        while self._file is None and not self._dead:
            if self._sock is None:
                out.clear()
                if not self._reconnect():
                    return
                continue
            with self._lock:
                if not out:
                    for seq, line in self._pending:
                        if seq > self._sent_upto:
                            out += envelope(seq, line)
                            self._sent_upto = seq
                done = self._closing and self._acked >= self._seq - 1
                deadline = self._close_deadline
            if done:
                self._say_bye()
                return
            if time.monotonic() > deadline:
                return  # close() writes what is left to the embedded file
            timeout = min(1.0, max(0.0, deadline - time.monotonic()))
            sock_fd = self._sock.fileno()
            try:
                readable, writable, _ = select.select(
                    [sock_fd, self._wake_r], [sock_fd] if out else [], [], timeout
                )
            except (OSError, ValueError):
                self._drop_connection()
                continue
            self.cpu_seconds = time.thread_time()
            if self._wake_r in readable:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 4096)
            try:
                if sock_fd in readable and not self._receive():
                    self._drop_connection()
                    continue
                if out and sock_fd in writable:
                    n = self._sock.send(out)
                    del out[:n]
            except BlockingIOError:
                pass
            except OSError:
                self._drop_connection()

    def _receive(self) -> bool:
        """Read acks; False when the daemon closed the connection."""
        assert self._sock is not None
        data = self._sock.recv(65536)
        if not data:
            return False
        self._inbuf += data
        while True:
            nl = self._inbuf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self._inbuf[:nl])
            del self._inbuf[: nl + 1]
            try:
                msg = p.decode(line)
            except ValueError:
                continue
            if msg.get("op") == p.OP_ACK and isinstance(msg.get("seq"), int):
                self._ack(msg["seq"])
            elif msg.get("op") == p.OP_FINDING and isinstance(msg.get("record"), dict):
                tell = self.on_finding
                if tell is not None:
                    tell(msg["record"])  # the recorder guards its listeners
            elif msg.get("op") == p.OP_ERROR:
                if not self._said_drop:
                    self._said_drop = True
                    say(
                        f"the daemon at {self.path} dropped run {self.daemon_run_id}: "
                        f"{str(msg.get('error') or msg.get('code') or 'no reason given')[:300]}; "
                        "retrying with backoff"
                    )
                return False
        return len(self._inbuf) <= p.MAX_LINE_BYTES

    def _ack(self, seq: int) -> None:
        with self._lock:
            if seq <= self._acked:
                return
            self._acked = seq
            self._backoff = BACKOFF_FIRST  # this connection works: a later loss retries at once
            self._disconnected_at = None
            while self._pending and self._pending[0][0] <= seq:
                _, line = self._pending.popleft()
                self._pending_bytes -= len(line)

    def _drop_connection(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        self._inbuf.clear()
        with self._lock:
            self._sent_upto = self._acked
        if self._disconnected_at is None:
            self._disconnected_at = time.monotonic()

    def _reconnect(self) -> bool:
        """Try until connected (True) or past the grace period / close deadline (fallback, False).

        A connection that ended after making progress is retried at once (a daemon
        restart); one that ended without (a daemon that drops the run) first waits.
        """
        delay = self._backoff
        if delay > BACKOFF_FIRST:
            self._pause(delay)
        while True:
            now = time.monotonic()
            since = now - (self._disconnected_at or now)
            with self._lock:
                deadline = self._close_deadline
            if since > self.grace:
                self._fall_back(
                    f"the daemon at {self.path} went away and did not come back within {self.grace:g} s"
                )
                return False
            if now > deadline:
                return False
            try:
                self._resume()
                self._backoff = min(delay * 2, BACKOFF_MAX)  # until an ack says it works
                return True
            except UntrustedDaemon as exc:  # a socket swapped for another user's: never again
                self._fall_back(str(exc))
                return False
            except DaemonRefused as exc:
                if exc.code != "unknown_run":
                    self._fall_back(f"the daemon at {self.path} refused to resume the run ({exc})")
                    return False
                self.token = ""  # it forgot us (state lost): start a new run there, header first
                self._resend_pinned = True
            except OSError:
                pass
            self._pause(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _pause(self, delay: float) -> None:
        """Wait about `delay` (jittered, so many clients do not retry in step), less when
        closing. New records do not end it (they wake the thread, which waits on: on a
        full disk the reconnect rate was the epoch rate); close() cuts it to its deadline."""
        end = time.monotonic() + delay * random.uniform(0.5, 1.0)
        while True:
            now = time.monotonic()
            with self._lock:
                until = min(end, self._close_deadline) if self._closing else end
            if now >= until:
                return
            try:
                readable, _, _ = select.select([self._wake_r], [], [], until - now)
                if readable:
                    os.read(self._wake_r, 4096)
            except (OSError, ValueError):  # the pipe is gone: sleep, never spin
                time.sleep(until - now)

    def _resume(self, connected: socket.socket | None = None) -> None:
        hello = p.hello_run(self.run_id, self.token or None, client_name())
        sock, welcome, rest = handshake_run(self.path, hello, HANDSHAKE_TIMEOUT, connected)
        next_seq = welcome.get("next_seq")
        next_seq = next_seq if isinstance(next_seq, int) else 0
        with self._lock:
            if self._resend_pinned:
                first = self._pending[0][0] if self._pending else self._seq
                head = [(s, line) for s, line in self._pinned if s < first]
                self._pending.extendleft(reversed(head))
                self._pending_bytes += sum(len(line) for _, line in head)
                self._resend_pinned = False
                next_seq = 0
            self._acked = next_seq - 1
            while self._pending and self._pending[0][0] < next_seq:
                _, line = self._pending.popleft()
                self._pending_bytes -= len(line)
            self._sent_upto = next_seq - 1
        self._welcome(welcome)
        self._sock = sock
        self._inbuf = bytearray(rest)
        if not self._pending:  # else only an ack proves the daemon takes the run again
            self._disconnected_at = None
        if self._connected_once:
            self.reconnects += 1
        self._connected_once = True

    def _say_bye(self) -> None:
        if self._sock is None:
            return
        with contextlib.suppress(OSError):
            self._sock.setblocking(True)
            self._sock.settimeout(0.5)
            self._sock.sendall(p.encode({"op": p.OP_BYE}))

    # -- fallback ----------------------------------------------------------------------------------

    def _fall_back(self, why: str) -> None:
        """From now on write the embedded trace: header, a notice, then all that was not acked."""
        self._answered.set()
        with self._lock:
            if self._file is not None or self._dead:
                return
            path = self.fallback_dir / f"{self.run_id}.jsonl"
            try:
                writer = TraceWriter(path, exclusive=True)
            except OSError as exc:
                say(f"{why}; cannot write the embedded trace {path} either ({exc.strerror or exc})")
                self._pending.clear()
                self._pending_bytes = 0
                self._dead = True
                return
            first = self._pending[0][0] if self._pending else self._seq
            if self._sock is not None and self.daemon_run_id:
                send_handover(self._sock, first)
            notice = None
            if first > 0 and self._connected_once:
                message = (
                    f"records before this line went to the daemon at {self.path} as run "
                    f"{self.daemon_run_id} ({self.daemon_trace}); {why}"
                )
                notice = schema.record(schema.NOTICE, self.run_id, part="daemon sink", message=message)
            try:
                write_embedded(writer, self._pinned, self._pending, first, self._connected_once, notice)
            except OSError as exc:
                say(f"{why}; writing the embedded trace {path} failed ({exc.strerror or exc})")
            self._pending.clear()
            self._pending_bytes = 0
            self._file = writer
            self.description = f"embedded trace {path} (after the daemon at {self.path})"
        say(f"{why}; writing the embedded trace {path} from here on")


def _own_traces(names: Any, trace: str) -> tuple[str, ...]:
    """The user's other traces beside this run's, by the names the daemon gave (it lists its
    0711 `traces/`, the user cannot): where a restore's parent is looked for."""
    if not trace or not isinstance(names, list):
        return ()
    here = os.path.dirname(trace)
    return tuple(
        os.path.join(here, n)
        for n in names[:MAX_OWN_TRACES]
        if isinstance(n, str) and n.endswith(".jsonl") and not n.startswith(".") and os.path.basename(n) == n
    )
