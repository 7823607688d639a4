"""A raw wire-protocol client running as another user, for the daemon's hardening tests.

The suite runs as root; the daemon trusts only what the kernel says about a client
(SO_PEERCRED), so a test of "what can uid X make the root daemon do" needs a process
that really is uid X. The interpreter lives under /root (0700), so other users cannot
exec it: `OtherUserClient` forks, and the child drops to the uid, says hello, and relays
lines between the daemon and the test until the test closes its pipe.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import orjson

NOBODY = 65534


def drop_to(uid: int, *, keep_root_files: bool = False) -> None:
    """In a forked child: become `uid` (real and effective; no groups but its own).

    The interpreter lives under /root (0700), so a child that must still import modules
    keeps root's file access (`keep_root_files`: saved uid 0 and fsuid 0). The kernel
    tells the daemon the effective uid (SO_PEERCRED) and /proc shows real and effective
    `uid`: to the daemon it is that user.
    """
    os.setgroups([])
    if keep_root_files:
        os.setresgid(uid, uid, 0)
        os.setresuid(uid, uid, 0)
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.setfsuid(0)
        libc.setfsgid(0)
    else:
        os.setgid(uid)
        os.setuid(uid)


def _client_main(socket_path: str, run_id: str, cmd_fd: int, out_fd: int, uid: int) -> None:
    """The child: relay the daemon's lines to `out_fd` and the test's lines from `cmd_fd`."""
    drop_to(uid)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(socket_path)
    sock.sendall(
        orjson.dumps({"op": "hello", "protocol": 1, "role": "run", "run_id": run_id, "token": None}) + b"\n"
    )
    cmds = os.fdopen(cmd_fd, "rb", buffering=0)
    _relay(sock, cmds, cmd_fd, out_fd)
    sock.close()
    while cmds.read(65536):  # hung up on: the process lives on until the test lets go
        pass


def _relay(sock: socket.socket, cmds: Any, cmd_fd: int, out_fd: int) -> None:
    pending = b""
    while True:
        ready, _, _ = select.select([sock, cmd_fd], [], [])
        if sock in ready:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                os.write(out_fd, b"EOF\n")
                return
            os.write(out_fd, chunk)
        if cmd_fd in ready:
            data = cmds.read(65536)
            if not data:
                return
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(b"EXEC "):  # become another program, the socket kept open
                    argv = orjson.loads(line[5:])
                    sock.set_inheritable(True)
                    os.execv(argv[0], argv)
                try:
                    sock.sendall(line + b"\n")
                except OSError:  # the daemon hung up: pass on what it said before
                    sock.settimeout(2.0)
                    with contextlib.suppress(OSError):
                        while chunk := sock.recv(65536):
                            os.write(out_fd, chunk)
                    os.write(out_fd, b"EOF\n")
                    return


class OtherUserClient:
    """A forked child that is `uid` speaking the wire protocol as the test tells it."""

    # The command pipes of the clients alive: a child must not hold another's write end (the
    # other child would see no end of its commands, and its close() waited 5 s, then killed it).
    _command_pipes: ClassVar[set[int]] = set()

    def __init__(self, socket_path: Path | str, run_id: str, uid: int = NOBODY) -> None:
        cmd_r, self._cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 0
            try:
                for fd in (self._cmd_w, *OtherUserClient._command_pipes):
                    with contextlib.suppress(OSError):
                        os.close(fd)
                os.close(out_r)
                _client_main(str(socket_path), run_id, cmd_r, out_w, uid)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(cmd_r)
        os.close(out_w)
        OtherUserClient._command_pipes.add(self._cmd_w)
        self._out = os.fdopen(out_r, "rb")
        self.welcome = self.next_msg()

    def next_msg(self) -> dict[str, Any]:
        line = self._out.readline()
        if not line or line == b"EOF\n":
            raise AssertionError("the daemon closed the connection")
        return orjson.loads(line)

    def send(self, msg: dict[str, Any]) -> None:
        """One line to the daemon (lost, as on a closed socket, once the child has gone)."""
        with contextlib.suppress(BrokenPipeError):
            os.write(self._cmd_w, orjson.dumps(msg) + b"\n")

    def record(self, seq: int, type_: str, **fields: Any) -> None:
        self.send(
            {"op": "rec", "seq": seq, "record": {"type": type_, "run_id": "x", "t": time.time(), **fields}}
        )

    def exec(self, *argv: str) -> None:
        """The child execs `argv` (its pid and its connection stay)."""
        os.write(self._cmd_w, b"EXEC " + orjson.dumps(list(argv)) + b"\n")

    def wait_ack(self, seq: int) -> None:
        while True:
            msg = self.next_msg()
            if msg.get("op") == "ack" and msg["seq"] >= seq:
                return
            if msg.get("op") == "error":
                raise AssertionError(f"daemon error: {msg}")

    def close(self) -> None:
        OtherUserClient._command_pipes.discard(self._cmd_w)
        with contextlib.suppress(OSError):
            os.close(self._cmd_w)
        self._out.close()
        for _ in range(100):
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


@contextlib.contextmanager
def shared_tmp() -> Iterator[Path]:
    """A /tmp directory (0755) other users can reach; pytest's tmp_path is 0700 root."""
    import shutil

    path = Path(tempfile.mkdtemp(prefix="ewh", dir="/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
