"""A fork server for the suite's training scripts: one interpreter that imported NumPy,
TensorFlow and Keras once, forking a child per script.

Why: most integration tests run a tiny Keras script in a fresh interpreter (the hook
patches process-wide state), and `import tensorflow` is 5-8 s of each on a CI core while
the training itself is a second or two. A child forked from an interpreter that imported
TensorFlow but never ran an op starts TensorFlow's runtime afresh (its thread pools and
eager context are made at the first op), so from the script's first line on it is the
process a user runs: the script is `__main__`, with its own argv, cwd, environment, stdout
and stderr, and it exits through the interpreter's own finalisation (atexit, threads,
the hook's close), with its own exit code or signal.

What differs from `python script.py`, and so when the suite does not use it (support.py
`run_python` decides): TensorFlow and Keras are imported before the script's first line,
as in a notebook where `import epochwatch.hook` comes after them. Tests of import order,
of another Keras backend or of an interpreter's start-up (PYTHONPATH site dirs, -X flags)
run a real fresh interpreter.

Protocol (a connection per script, on a Unix socket): the client sends one JSON line
{script, args, cwd, env, stdout, stderr} (file paths), or {script, args, cwd, env} with three
descriptors (SCM_RIGHTS) that become the child's stdin, stdout and stderr, as Popen's pipes or a
terminal would; the server forks, answers {"pid": N} and, when
the child ended, {"returncode": R, "cpu": S} (R negative for a signal, as subprocess says;
S the child's user+sys seconds, which the suite's CPU log counts: tests/cpu_times.py).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
import sys
import traceback
import types
from typing import Any

# What the children share: set before the imports read them, equal to support.TF_ENV.
PRELOAD_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONHASHSEED": "0",
    "KERAS_BACKEND": "tensorflow",
}


def _resident_file_pages() -> list[tuple[int, int]]:
    """The (address, length) runs of file-backed pages this process has mapped in.

    Linux does not copy those page-table entries at fork (a fault fills them again), so a
    child starts with TensorFlow's ~400 MB of library pages out of its RSS and faults them
    back as it runs: an RSS that grows for a while in every child, which a fresh
    interpreter (whose import faulted them before the script's first line) never shows.
    The child maps the same pages in again before the script starts (_map_in)."""
    import numpy as np

    runs: list[tuple[int, int]] = []
    page = os.sysconf("SC_PAGE_SIZE")
    with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split()
            if len(fields) < 6 or not fields[5].startswith("/") or not fields[1].startswith("r"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            pagemap.seek(start // page * 8)
            entries = np.frombuffer(pagemap.read((end - start) // page * 8), dtype=np.uint64)
            present = np.concatenate(([0], (entries >> np.uint64(63)).astype(np.int8), [0]))
            edges = np.flatnonzero(np.diff(present))
            for first, stop in zip(edges[::2], edges[1::2], strict=True):
                runs.append((start + int(first) * page, int(stop - first) * page))
    return runs


def _map_in(runs: list[tuple[int, int]]) -> None:
    """Fault `runs` in (MADV_POPULATE_READ, Linux 5.14+; else a read of each page)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = os.sysconf("SC_PAGE_SIZE")
    for address, length in runs:
        if libc.madvise(address, length, 22) != 0:  # 22: MADV_POPULATE_READ
            for offset in range(0, length, page):
                ctypes.string_at(address + offset, 1)


def _exec_as_main(script: str) -> None:
    """Run `script` as `python script.py` does: in a `__main__` module that stays in
    sys.modules until the interpreter finalises (runpy would drop it, and the script's
    objects with it, before atexit runs)."""
    import builtins
    import importlib.machinery

    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__builtins__ = builtins  # type: ignore[attr-defined]
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
    sys.modules["__main__"] = main
    with open(script, "rb") as f:
        code = compile(f.read(), script, "exec")
    exec(code, main.__dict__)


def _stdio(request: dict[str, Any], fds: list[int]) -> None:
    """Put the script's stdin, stdout and stderr in place: the descriptors the client sent,
    else /dev/null and the files it named."""
    if not fds:
        fds = [
            os.open(os.devnull, os.O_RDONLY),
            os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
            os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        ]
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds) - {0, 1, 2}:
        os.close(fd)


def _run_child(request: dict[str, Any], fds: list[int], resident: list[tuple[int, int]]) -> None:
    """In the forked child: become `python script.py` and never return."""
    code = 1
    try:
        _map_in(resident)
        _stdio(request, fds)
        os.setsid()  # the test's timeout kills the script's whole group, as for a child
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        import tempfile

        tempfile.tempdir = None  # TMPDIR is the script's, not the server's
        script = request["script"]
        sys.argv = [script, *request["args"]]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        try:
            _exec_as_main(script)
            code = 0
        except SystemExit as exc:
            raise SystemExit(exc.code) from None
        except BaseException as exc:
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
                tb = tb.tb_next  # the traceback a user sees starts in the script
            sys.excepthook(type(exc), exc.with_traceback(tb), tb)
            code = 1
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
    raise SystemExit(code)


def _receive(conn: socket.socket) -> tuple[bytes, list[int]]:
    """A request's line, and the descriptors that came with its first bytes (none, or three)."""
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    while data and not data.endswith(b"\n"):
        more = conn.recv(1 << 16)
        if not more:
            return b"", fds
        data += more
    return data, fds


def _answer(conn: socket.socket, message: dict[str, float]) -> None:
    with contextlib.suppress(OSError):  # a client that gave up (its timeout) is gone
        conn.sendall(json.dumps(message).encode() + b"\n")


def _serve(sock: socket.socket, resident: list[tuple[int, int]]) -> None:
    """Fork a child per request; answer each connection its child's pid, then its exit.
    Children run side by side (a test may start several); the server never runs a thread."""
    waiting: dict[int, socket.socket] = {}
    sock.settimeout(0.05)
    while True:
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            conn = None
        if conn is not None:
            conn.settimeout(None)
            line, fds = _receive(conn)
            if line:
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    sock.close()
                    for other in waiting.values():
                        other.close()
                    conn.close()
                    _run_child(request, fds, resident)
                for fd in fds:
                    os.close(fd)
                _answer(conn, {"pid": pid})
                waiting[pid] = conn
            else:
                for fd in fds:
                    os.close(fd)
                conn.close()
        while waiting:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                break
            done = waiting.pop(pid, None)
            if done is not None:
                with done:
                    cpu = usage.ru_utime + usage.ru_stime
                    _answer(done, {"returncode": os.waitstatus_to_exitcode(status), "cpu": cpu})


def main() -> None:
    path = sys.argv[1]
    os.environ.update(PRELOAD_ENV)
    import keras  # noqa: F401
    import numpy  # noqa: F401
    import tensorflow  # noqa: F401

    resident = _resident_file_pages()
    # The imports' ~1M objects out of the collector's reach (gc.freeze, as CPython's docs advise
    # for a fork server): otherwise each child's full collections and its finalisation walk
    # them all, writing their headers and so copying every page they lie on (1.5 s of CPU a
    # child, most of a short script's). Nothing the child makes is frozen; epochwatch never
    # walks the collector's lists.
    gc.collect()
    gc.freeze()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(16)
    print("ready", flush=True)
    _serve(sock, resident)


if __name__ == "__main__":
    main()
