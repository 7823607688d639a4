"""A real `epochwatch daemon` process for tests, and small raw-socket clients to poke it.

The daemon runs as `python -m epochwatch daemon --socket ... --state-dir ...` with its
stderr in a log file the tests read. Socket paths live in a short /tmp directory (a
Unix socket path is limited to 107 bytes; pytest's tmp_path can be longer).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from epochwatch.trace.reader import iter_records
from tests.support import REPO, TF_ENV
from tests.support import wait_until as wait_until  # kept here for the daemon tests that import it

PY = sys.executable


def base_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("EPOCHWATCH_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env.update(TF_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


class DaemonProc:
    def __init__(self, root: Path, *, config: str | None = None, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.sock_dir = Path(tempfile.mkdtemp(prefix="ewd", dir="/tmp"))
        self.sock_dir.chmod(0o755)  # as RuntimeDirectory: other users reach the socket
        self.socket = self.sock_dir / "d.sock"
        self.state = root / "state"
        self.log_path = root / "daemon.log"
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = root / "daemon.toml"
            self.config_path.write_text(config)
        self.env = base_env(**(env or {}))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> DaemonProc:
        cmd = [PY, "-m", "epochwatch", "daemon", "--socket", str(self.socket), "--state-dir", str(self.state)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        before = self.log().count("listening on")  # the log is shared by restarts
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=self.env, cwd=self.root)
        if wait:
            self.wait_ready(before + 1)
        return self

    def wait_ready(self, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            if self.log().count("listening on") >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"daemon not ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 10.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()
            if len(re.findall(pattern, text)) >= count:
                return text
            time.sleep(0.05)
        raise AssertionError(f"no {count} x {pattern!r} in the daemon log within {timeout} s:\n{self.log()}")

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not stop within {timeout} s:\n{self.log()}") from None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.sock_dir, ignore_errors=True)

    @property
    def traces(self) -> Path:
        return self.state / "traces"

    def trace(self, run_id: str) -> list[dict[str, Any]]:
        """The run's records so far. A trace the daemon has created but not yet written to
        reads as no records (a test polling it on a slow machine can see it so)."""
        path = self.traces / f"{run_id}.jsonl"
        if path.stat().st_size == 0:
            return []
        return list(iter_records(path))

    def trace_files(self) -> list[Path]:
        return sorted(self.traces.glob("*.jsonl"))


@contextlib.contextmanager
def running_daemon(root: Path, **kwargs: Any) -> Iterator[DaemonProc]:
    d = DaemonProc(root, **kwargs)
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


class RawClient:
    """A client speaking the wire protocol by hand, with blocking reads and a timeout."""

    def __init__(self, path: Path | str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, data: bytes | dict[str, Any]) -> None:
        if isinstance(data, dict):
            data = orjson.dumps(data) + b"\n"
        self.sock.sendall(data)

    def recv(self) -> dict[str, Any] | None:
        """The next message, or None at EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return orjson.loads(line)

    def hello(self, run_id: str = "raw", token: str | None = None, protocol: int = 1) -> dict[str, Any]:
        self.send({"op": "hello", "protocol": protocol, "role": "run", "run_id": run_id, "token": token})
        reply = self.recv()
        assert reply is not None, "the daemon closed the connection without a reply"
        return reply

    def record(self, seq: int, type_: str, **fields: Any) -> None:
        self.send(
            {
                "op": "rec",
                "seq": seq,
                "record": {"type": type_, "run_id": "ignored", "t": time.time(), **fields},
            }
        )

    def wait_ack(self, seq: int) -> None:
        while True:
            msg = self.recv()
            assert msg is not None, "connection closed before the ack"
            if msg.get("op") == "ack" and msg["seq"] >= seq:
                return

    def closed_by_peer(self) -> bool:
        """True when the daemon closed the connection (reads EOF, after any pending messages)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()


# A training process without TensorFlow: the real SocketSink (via open_sink), epochs on a timer.
# With FAKE_HOLD_AFTER=n and FAKE_HOLD_UNTIL=path it stops after epoch n until that path exists:
# a test acts between two epochs however slow the machine is.
FAKE_RUN = r"""
import os, sys, time
from epochwatch.trace import schema
from epochwatch.trace.sink import open_sink
epochs = int(sys.argv[1]); period = float(sys.argv[2]); end = sys.argv[3] if len(sys.argv) > 3 else "completed"
sink = open_sink("fake-run")
print("SINK", sink.description, flush=True)
run = "fake-run"
sink.write(schema.record("run_start", run, schema=1, mode="embedded",
                         env={"script": "fake_run.py", "pid": os.getpid()}))
ballast = []
for n in range(epochs):
    t0 = time.time()
    ballast.append(bytearray(int(os.environ.get("FAKE_GROW_BYTES", "0"))))
    time.sleep(period)
    sink.write(schema.record("epoch", run, epoch=n, start=t0, end=time.time(), seconds=period,
                             metrics={"loss": 1.0 / (n + 1)}))
    print("EPOCH", n, flush=True)
    if n == int(os.environ.get("FAKE_HOLD_AFTER", "-1")):  # until the test lets it go on
        while not os.path.exists(os.environ["FAKE_HOLD_UNTIL"]):
            time.sleep(0.01)
if end == "hang":
    time.sleep(3600)
sink.write(schema.record("run_end", run, ended="completed", epochs=epochs))
sink.close()
print("DONE", getattr(sink, "reconnects", None), flush=True)
"""


def start_fake_run(
    root: Path, socket_path: Path | str, epochs: int, period: float, end: str = "completed", **env: str
) -> subprocess.Popen[str]:
    script = root / "fake_run.py"
    script.write_text(FAKE_RUN)
    full_env = base_env(EPOCHWATCH_SOCKET=str(socket_path), EPOCHWATCH_DIR=str(root / "embedded"), **env)
    return subprocess.Popen(
        [PY, str(script), str(epochs), str(period), end],
        cwd=root,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 30.0) -> str:
    """Read the child's stdout until a line starts with `prefix` (the child must print often)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(
                f"child ended before {prefix!r}: {proc.stderr.read() if proc.stderr else ''}"
            )
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no {prefix!r} line within {timeout} s")
