"""The daemon's side of privilege separation: a zygote, and one worker per (uid, gid).

The zygote is forked when the daemon is built, before it starts any thread, so the
workers it forks later come from a single-threaded process (a fork of the threaded
daemon could inherit a lock some other thread held). For each (uid, gid) that needs one,
the daemon makes a socketpair, hands one end and the credentials to the zygote
(SCM_RIGHTS), and the zygote forks a worker that looks up the user's groups (the user
database may be LDAP: seconds, never on the daemon's loop) and drops to them (userworker.py).

The daemon never blocks on a worker: its socket is non-blocking and read by the event
loop; a request that does not fit the socket's buffer means the worker is stalled (its
user can SIGSTOP it), and the worker is ended. What a worker says is hostile input
(frames.py bounds it; runwatch.py checks every field against what it asked for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from epochwatch.daemon.frames import FrameError, FrameReader, encode

log = logging.getLogger("epochwatch.daemon")

# A worker that died is not started again for its uid sooner than this.
RESPAWN_SECONDS = 5.0


class Zygote:
    """A root process, forked before any thread, that forks the per-uid workers."""

    def __init__(self) -> None:
        if threading.active_count() > 1:  # a lock of another thread could be held in the child
            log.warning("the zygote is forked with %d threads running", threading.active_count())
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            from epochwatch.daemon.userworker import zygote_main

            zygote_main(theirs)
        theirs.close()
        ours.settimeout(2.0)
        self.pid = pid
        self._sock: socket.socket | None = ours

    def spawn(self, uid: int, gid: int) -> tuple[socket.socket, int]:
        """(the daemon's end of a new worker's socket, the worker's pid); OSError if none."""
        if self._sock is None:
            raise OSError("the zygote is closed")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        spec = {"uid": uid, "gid": gid}  # the worker looks its groups up: NSS can take seconds
        try:
            socket.send_fds(self._sock, [orjson.dumps(spec)], [theirs.fileno()])
            pid = int(self._sock.recv(64) or b"-1")
        except (OSError, ValueError) as exc:
            ours.close()
            raise OSError(f"the zygote did not answer ({exc})") from None
        finally:
            theirs.close()
        if pid <= 0:
            ours.close()
            raise OSError("the zygote could not fork a worker")
        return ours, pid

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(OSError):
                os.waitpid(self.pid, 0)


class UidWorker:
    """The daemon's handle on one worker: send without blocking, read on the event loop."""

    def __init__(
        self,
        key: tuple[int, int],
        sock: socket.socket,
        pid: int,
        on_message: Callable[[UidWorker, dict[str, Any]], None],
        on_gone: Callable[[UidWorker, str], None],
    ) -> None:
        self.key = key
        self.pid = pid
        self._sock = sock
        self._reader = FrameReader()
        self._on_message = on_message
        self._on_gone = on_gone
        self.closed = False
        sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def send(self, msg: dict[str, Any]) -> bool:
        """Hand `msg` to the worker; False (and the worker ended) when it does not take it."""
        if self.closed:
            return False
        frame = encode(msg)
        try:
            sent = self._sock.send(frame)
        except OSError as exc:
            self._end(f"cannot be written to ({exc.strerror or exc})")
            return False
        if sent != len(frame):
            self._end("stalled (its socket is full)")
            return False
        return True

    def _readable(self) -> None:
        try:
            data = self._sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            data = b""
            log.debug("worker %s: %s", self.key, exc)
        if not data:
            self._end("exited")
            return
        try:
            messages = self._reader.feed(data)
        except FrameError as exc:
            self._end(f"sent a bad frame ({exc})")
            return
        for msg in messages:
            if self.closed:
                return
            self._on_message(self, msg)

    def _end(self, why: str) -> None:
        if self.closed:
            return
        self.close()
        self._on_gone(self, why)

    def close(self) -> None:
        """End the worker: its socket closes and it exits on EOF. It is not killed by pid:
        the zygote reaps it the moment it exits, so that pid may already be another's."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


class Workers:
    """One worker per (uid, gid), started on demand, at most once per RESPAWN_SECONDS."""

    def __init__(
        self,
        on_message: Callable[[UidWorker, dict[str, Any]], None],
        on_gone: Callable[[UidWorker, str], None],
    ) -> None:
        self._zygote: Zygote | None = None
        self._broken: str | None = None
        try:
            self._zygote = Zygote()
        except OSError as exc:
            self._broken = f"no zygote ({exc.strerror or exc})"
        self._on_message = on_message
        self._on_gone = on_gone
        self._workers: dict[tuple[int, int], UidWorker] = {}
        self._failed_at: dict[tuple[int, int], float] = {}

    def get(self, uid: int, gid: int) -> tuple[UidWorker | None, str | None]:
        """The worker for (uid, gid), started if needed; (None, why) when there is none."""
        key = (uid, gid)
        worker = self._workers.get(key)
        if worker is not None and not worker.closed:
            return worker, None
        if self._zygote is None:
            return None, self._broken
        if os.geteuid() != 0 and uid != os.geteuid():
            return None, f"the daemon is not root and cannot act as uid {uid}"
        if time.monotonic() - self._failed_at.get(key, float("-inf")) < RESPAWN_SECONDS:
            return None, "its worker ended a moment ago"
        try:
            sock, pid = self._zygote.spawn(uid, gid)
            worker = UidWorker(key, sock, pid, self._on_message, self._gone)
        except (OSError, RuntimeError) as exc:
            self._failed_at[key] = time.monotonic()
            return None, f"cannot start a worker for uid {uid} ({exc})"
        self._workers[key] = worker
        return worker, None

    def running(self, uid: int, gid: int) -> UidWorker | None:
        worker = self._workers.get((uid, gid))
        return worker if worker is not None and not worker.closed else None

    def _gone(self, worker: UidWorker, why: str) -> None:
        if self._workers.get(worker.key) is worker:
            del self._workers[worker.key]
        self._failed_at[worker.key] = time.monotonic()
        log.warning("the worker of uid %d (pid %d) %s", worker.key[0], worker.pid, why)
        self._on_gone(worker, why)

    def stop(self, uid: int, gid: int) -> None:
        worker = self._workers.pop((uid, gid), None)
        if worker is not None:
            worker.close()

    def close(self) -> None:
        for worker in list(self._workers.values()):
            worker.close()
        self._workers.clear()
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None
