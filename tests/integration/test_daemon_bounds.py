"""Issue 22, item 2: what one user can make the root daemon hold or write, bounded.

Each attack runs in a forked child that really is uid 65534 (`as_nobody`), against a real
daemon process; the daemon's RSS is read from /proc, its log and traces from disk, and
root's `status` through the same client code `epochwatch status` uses.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from epochwatch.trace.client import query_status
from tests.integration.daemon_harness import DaemonProc, running_daemon, wait_until
from tests.integration.other_user import NOBODY, drop_to

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user"),
    pytest.mark.serial,  # holds the daemon to 1 s under a load of its own: after the rest
]


_lingering: list[int] = []


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    yield
    while _lingering:
        pid = _lingering.pop()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def as_nobody(fn: Callable[..., Any], *args: Any, hold: float = 0.0) -> Any:
    """Run `fn(*args)` in a forked child that is uid 65534; returns what it returned (JSON).
    With `hold`, the child (and the connections it left open) lives on that long after."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            drop_to(NOBODY)
            os.write(w, orjson.dumps(fn(*args)) + b"\n")
            os.close(w)
            time.sleep(hold)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        line = fh.readline()
    if hold:
        _lingering.append(pid)
    else:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, f"the attack as uid {NOBODY} failed"
    assert line, f"the attack as uid {NOBODY} failed"
    return orjson.loads(line)


def _hello(path: str, run_id: str = "attack") -> tuple[socket.socket, bytes]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10.0)
    sock.connect(path)
    sock.sendall(orjson.dumps({"op": "hello", "protocol": 1, "role": "run", "run_id": run_id}) + b"\n")
    buf = b""
    while b"\n" not in buf:
        buf += sock.recv(65536)
    return sock, buf.partition(b"\n")[2]


def _welcomed(path: str) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10.0)
    sock.connect(path)
    sock.sendall(orjson.dumps({"op": "hello", "protocol": 1, "role": "run", "run_id": "r"}) + b"\n")
    return bool(orjson.loads(sock.makefile("rb").readline()).get("op") == "welcome")


def _rec(seq: int, type_: str, **fields: Any) -> bytes:
    record = {"type": type_, "run_id": "x", "t": time.time(), **fields}
    return orjson.dumps({"op": "rec", "seq": seq, "record": record}) + b"\n"


def _replies(sock: socket.socket, seconds: float) -> list[dict[str, Any]]:
    """What the daemon says within `seconds` (or until it hangs up)."""
    sock.settimeout(seconds)
    buf = b""
    try:
        while chunk := sock.recv(65536):
            buf += chunk
    except (TimeoutError, OSError):
        pass
    return [orjson.loads(line) for line in buf.split(b"\n") if line.strip()]


def _rss_mb(d: DaemonProc) -> float:
    assert d.proc is not None
    for line in Path(f"/proc/{d.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# -- the attacks (run as uid 65534) ----------------------------------------------------------------


def _many_run_ends(path: str, n: int, size: int) -> list[str]:
    sock, _ = _hello(path, "ends")
    sock.sendall(_rec(0, "run_start", schema=1))
    for seq in range(1, n + 1):
        sock.sendall(_rec(seq, "run_end", ended="ok", pad="x" * size))
    sock.sendall(_rec(n + 1, "epoch", epoch=0, seconds=1.0))
    return [str(m.get("op")) for m in _replies(sock, 3.0)]


def _unfinished_lines(path: str, n: int, size: int) -> int:
    """`n` connections, each a hello then `size` bytes of a line that never ends; how many
    the daemon hung up on."""
    socks = []
    for i in range(n):
        sock, _ = _hello(path, f"unfinished-{i}")
        with contextlib.suppress(OSError):
            sock.sendall(b'{"op":"rec","seq":0,"record":{"type":"epoch","pad":"' + b"x" * size)
        socks.append(sock)
    time.sleep(1.0)
    dropped = 0
    for sock in socks:
        if any(m.get("op") == "error" for m in _replies(sock, 0.05)):
            dropped += 1
    return dropped


def _findings_flood(path: str, n: int, size: int) -> None:
    sock, _ = _hello(path, "findings")
    sock.sendall(_rec(0, "run_start", schema=1))
    for seq in range(1, n + 1):
        sock.sendall(
            _rec(seq, "finding", kind=f"k{seq}", severity="warning", title="t" * size, target="x" * 1000)
        )
    _replies(sock, 2.0)


def _one_line_connections(path: str, n: int) -> None:
    for _ in range(n):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            sock.sendall(b"not a hello\n")
        except OSError:
            pass
        finally:
            sock.close()


# -- the tests -------------------------------------------------------------------------------------------

LIMITS = "[limits]\nmax_trace_bytes_per_run = 4194304\nmax_trace_bytes_per_uid = 10485760\n"


def test_run_end_bytes_count_and_nothing_is_taken_after_it(tmp_path: Path) -> None:
    """30 run_end records of 900 kB wrote 27 MB under a 4 MiB per-run limit, and the run
    took records after its run_end: now one small run_end at most, nothing after it."""
    with running_daemon(tmp_path, config=LIMITS) as d:
        as_nobody(_many_run_ends, str(d.socket), 30, 900_000)
        (trace,) = d.trace_files()
        size = trace.stat().st_size
        assert size < 4 * 1024 * 1024, f"{size} bytes written under a 4 MiB per-run limit"
        records = d.trace(trace.stem)
        assert sum(r["type"] == "run_end" for r in records) <= 1
        assert "epoch" not in [r["type"] for r in records]


def test_records_after_run_end_are_refused(tmp_path: Path) -> None:
    def attack(path: str) -> list[str]:
        sock, _ = _hello(path, "after")
        sock.sendall(_rec(0, "run_start", schema=1) + _rec(1, "run_end", ended="ok"))
        sock.sendall(b"".join(_rec(seq, "epoch", epoch=seq, seconds=1.0) for seq in range(2, 12)))
        return [str(m.get("op")) for m in _replies(sock, 2.0)]

    with running_daemon(tmp_path) as d:
        as_nobody(attack, str(d.socket))
        (trace,) = d.trace_files()
        types = [r["type"] for r in d.trace(trace.stem)]
        assert types[-1] == "run_end" and "epoch" not in types, types
        d.wait_log(r"sent a epoch record after its run_end; refused")


def test_unfinished_lines_are_bounded_per_uid(tmp_path: Path) -> None:
    """150 connections holding an unfinished 1 MB line each grew the daemon by 185 MB."""
    with running_daemon(tmp_path) as d:
        before = _rss_mb(d)
        dropped = as_nobody(_unfinished_lines, str(d.socket), 60, 1_000_000)
        grown = _rss_mb(d) - before
        assert dropped >= 40, f"only {dropped} of 60 connections over the uid's buffer were dropped"
        assert grown < 40, f"the daemon grew {grown:.0f} MB for one user's unfinished lines"
        d.wait_log(r"bytes buffered, over the per-uid limit")


def test_a_findings_flood_is_bounded_and_roots_status_still_answers(tmp_path: Path) -> None:
    """200 findings of 1 MB grew the daemon by 200 MB and broke root's status and top."""
    with running_daemon(tmp_path) as d:
        before = _rss_mb(d)
        as_nobody(_findings_flood, str(d.socket), 120, 900_000, hold=30.0)
        as_nobody(_findings_flood, str(d.socket), 120, 20_000, hold=30.0)
        grown = _rss_mb(d) - before
        assert grown < 60, f"the daemon grew {grown:.0f} MB for one user's findings"
        t0 = time.monotonic()
        runs = query_status(str(d.socket))
        assert time.monotonic() - t0 < 1.0
        held = [r for r in runs if r["run_id"].startswith("findings")]
        assert len(held) == 2
        for run in held:
            assert len(run["findings"]) <= 20
            assert all(len(f.get("title", "")) <= 300 for f in run["findings"])
        assert max(r.get("findings_total", len(r["findings"])) for r in held) == 64
        d.wait_log(r"sent a finding over \d+ bytes; refused")


def test_log_lines_about_one_users_clients_are_rate_limited_and_counted(tmp_path: Path) -> None:
    """20,000 one-line connections in 5 s wrote 20,000 WARNING lines."""
    with running_daemon(tmp_path) as d:
        as_nobody(_one_line_connections, str(d.socket), 2000)
        wait_until(lambda: "were dropped" in d.log(), timeout=10.0)
        lines = [line for line in d.log().splitlines() if f"uid {NOBODY}" in line]
        assert len(lines) < 40, f"{len(lines)} log lines for one user's 2000 bad connections"
        assert any(re.search(r"\d+ (earlier|log) lines about", line) for line in lines), lines


def test_the_readmes_foreground_example_with_a_socket_in_tmp_works(tmp_path: Path) -> None:
    """Issue 22: `epochwatch daemon --socket /tmp/ew.sock` was refused (/tmp is writable by
    all); a sticky directory of root's is safe for the socket: nobody else can rename or
    remove it there, and a planted file or live listener at the path is still refused."""
    d = DaemonProc(tmp_path)
    d.socket = Path(f"/tmp/ew-test-{os.getpid()}.sock")
    try:
        d.start()
        assert d.socket.stat().st_uid == 0
        assert query_status(str(d.socket)) == []
        assert as_nobody(_welcomed, str(d.socket))
    finally:
        d.cleanup()
        with contextlib.suppress(FileNotFoundError):
            d.socket.unlink()
