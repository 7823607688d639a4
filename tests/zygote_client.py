"""The suite's side of tests/zygote.py: when a script may be forked from the TensorFlow
zygote, and running it there with subprocess.run's result (CompletedProcess, or
TimeoutExpired with the script's process group killed).

A script runs in a real fresh interpreter instead when anything that TensorFlow, Keras or
Python read at import time differs from what the zygote imported with (the environment's
TF_*, KERAS_*, PYTHON*, thread and library settings, HOME), or when its text changes what
gets imported (another Keras backend, legacy Keras, JAX, PyTorch, a look at sys.modules).
`SUITE_ZYGOTE=0` in the suite's environment runs every script fresh (to compare).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

_IMPORT_SENSITIVE_PREFIXES = (
    "TF_",
    "KERAS_",
    "XLA_",
    "JAX",
    "CUDA_",
    "PYTHON",
    "OMP_",
    "MKL_",
    "OPENBLAS",
    "LD_",
    "MALLOC",
)
_FRESH_IF_SCRIPT_SAYS = re.compile(
    r"KERAS_BACKEND|TF_USE_LEGACY_KERAS|\bjax\b|\btorch\b|tf_keras|sys\.modules|multiprocessing|os\.fork"
)


def _import_sensitive(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_IMPORT_SENSITIVE_PREFIXES) or k == "HOME"}


def _zygote_env() -> dict[str, str]:
    """The environment the zygote imports with: the suite's, as support.child_env makes it."""
    from tests.zygote import PRELOAD_ENV

    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHWATCH_")}
    env.update(PRELOAD_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


class _Zygote:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ew-zygote-"))
        self.path = str(self.dir / "zygote.sock")
        env = _zygote_env()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote", self.path],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the TensorFlow zygote did not start (exit {self.proc.wait()})")
        self.calls = 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, args: list[str], cwd: Path, env: dict[str, str]) -> Child:
        self.calls += 1
        out, err = self.dir / f"{self.calls}.out", self.dir / f"{self.calls}.err"
        request = {"script": args[0], "args": args[1:], "cwd": str(cwd), "env": env}
        request.update(stdout=str(out), stderr=str(err))
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.path)
        conn.sendall(json.dumps(request).encode() + b"\n")
        stream = conn.makefile("rb")
        pid = int(json.loads(stream.readline())["pid"])
        return Child(args, pid, conn, stream, out, err)

    def connect(self, args: list[str], cwd: Path, env: dict[str, str], stdio: list[int]) -> socket.socket:
        """Start `python *args` on the descriptors `stdio` (stdin, stdout, stderr); the
        connection that then answers its pid and its exit."""
        request = {"script": args[0], "args": args[1:], "cwd": str(cwd), "env": env}
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.path)
        socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], stdio)
        return conn


class Child:
    """A script forked from the zygote, waited for as subprocess waits."""

    def __init__(
        self, args: list[str], pid: int, conn: socket.socket, stream: Any, out: Path, err: Path
    ) -> None:
        self.args, self.pid, self._conn, self._stream, self._out, self._err = (
            args,
            pid,
            conn,
            stream,
            out,
            err,
        )

    def wait(self, timeout: float) -> subprocess.CompletedProcess[str]:
        """The finished script; past `timeout` its process group is killed and
        TimeoutExpired raised with what it printed, as subprocess.run does."""
        with self._conn:
            self._conn.settimeout(timeout)
            try:
                line = self._stream.readline()
            except TimeoutError:
                _kill_group(self.pid)  # the zygote reaps it
                raise subprocess.TimeoutExpired(
                    self.args, timeout, _read(self._out), _read(self._err)
                ) from None
        if not line:
            raise RuntimeError("the TensorFlow zygote died while a script ran")
        answer = json.loads(line)
        global _children_cpu
        _children_cpu += float(answer.get("cpu", 0.0))
        returncode = int(answer["returncode"])
        return subprocess.CompletedProcess(
            [sys.executable, *self.args], returncode, _read(self._out), _read(self._err)
        )


class Process:
    """A script forked from the zygote with subprocess.Popen's stdio and its methods (pid,
    stdout and stderr pipes, poll, wait, send_signal, kill, communicate): for the tests that
    talk to a script while it runs (read its lines as it prints them, signal it, give it a
    terminal). stdin, stdout, stderr: a descriptor, subprocess.PIPE (stdout, stderr),
    subprocess.STDOUT (stderr), or None (stdin: /dev/null; the others: this process' own)."""

    def __init__(
        self,
        args: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
    ) -> None:
        self.args, self.returncode = args, None
        self.stdout = self.stderr = None
        mine: list[int] = []  # what the child gets and this process closes once it has them
        stdio = [stdin if stdin is not None else _opened(mine, os.open(os.devnull, os.O_RDONLY))]
        for which, spec, own in (("stdout", stdout, 1), ("stderr", stderr, 2)):
            if spec == subprocess.PIPE:
                read, write = os.pipe()
                setattr(self, which, open(read, errors="replace"))  # noqa: SIM115 (closed at EOF)
                stdio.append(_opened(mine, write))
            elif spec == subprocess.STDOUT:
                stdio.append(stdio[1])
            else:
                stdio.append(own if spec is None else spec)
        try:
            self._conn = _server().connect(args, cwd, env, stdio)
        finally:
            for fd in mine:
                os.close(fd)
        self._answers = b""
        self._readers: list[_Reader | None] | None = None
        self.pid = int(self._answer(None)["pid"])

    def _answer(self, timeout: float | None) -> dict[str, Any]:
        """The server's next line; {} if none came within `timeout`."""
        while b"\n" not in self._answers:
            if not select.select([self._conn], [], [], timeout)[0]:
                return {}
            data = self._conn.recv(4096)
            if not data:
                raise RuntimeError("the TensorFlow zygote died while a script ran")
            self._answers += data
        line, self._answers = self._answers.split(b"\n", 1)
        return dict(json.loads(line))

    def poll(self) -> int | None:
        self._ended(0)
        return self.returncode

    def _ended(self, timeout: float | None) -> bool:
        if self.returncode is None:
            answer = self._answer(timeout)
            if answer:
                global _children_cpu
                _children_cpu += float(answer.get("cpu", 0.0))
                self.returncode = int(answer["returncode"])
                self._conn.close()
        return self.returncode is not None

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str | None, str | None]:
        """Read the pipes to their end, then wait, as Popen.communicate (a timeout leaves the
        script running and raises TimeoutExpired; a second call goes on reading)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._readers is None:  # a thread a pipe: what the test read of it stays read
            self._readers = [_Reader(p) if p is not None else None for p in (self.stdout, self.stderr)]
        for reader in self._readers:
            if reader is not None:
                reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if reader.is_alive():
                    raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        out, err = (r.text if r is not None else None for r in self._readers)
        return out, err


class _Reader(threading.Thread):
    """Reads a pipe to its end (communicate's), then closes it."""

    def __init__(self, pipe: Any) -> None:
        super().__init__(name="zygote-pipe-reader", daemon=True)
        self.pipe, self.text = pipe, ""
        self.start()

    def run(self) -> None:
        with self.pipe:
            self.text = self.pipe.read()


def _opened(mine: list[int], fd: int) -> int:
    mine.append(fd)
    return fd


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    finally:
        path.unlink(missing_ok=True)


_zygote: _Zygote | None = None
_children_cpu = 0.0  # user+sys seconds of the scripts forked and reaped so far


def children_cpu() -> float:
    """The CPU seconds of every zygote child that ended so far (the zygote is their parent,
    so they are not in this process' RUSAGE_CHILDREN)."""
    return _children_cpu


def _server() -> _Zygote:
    global _zygote
    if _zygote is None or not _zygote.alive():
        if _zygote is not None:
            _zygote.close()
        _zygote = _Zygote()
        atexit.register(_zygote.close)
    return _zygote


def can_run(source: str, env: dict[str, str]) -> bool:
    """Whether `source` run with `env` is the same process forked from the zygote."""
    if os.environ.get("SUITE_ZYGOTE") == "0" or _FRESH_IF_SCRIPT_SAYS.search(source):
        return False
    return _import_sensitive(env) == _import_sensitive(_zygote_env())


def start(args: list[str], *, cwd: Path, env: dict[str, str]) -> Child:
    """`python *args` (a script and its arguments) forked from the zygote, started."""
    return _server().start(args, cwd, env)


def run(script: Path, *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """`python script` (cwd, env, timeout) forked from the zygote, as subprocess.run says it."""
    return start([str(script)], cwd=cwd, env=env).wait(timeout)
