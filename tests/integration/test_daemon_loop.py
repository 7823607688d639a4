"""The event loop waits on nothing a user or the disk can hold: every client's answer
goes through it, so one blocked call there stalls every user's `status`."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from epochwatch.trace.client import query_status
from tests.integration.daemon_harness import RawClient, running_daemon, wait_until
from tests.integration.other_user import OtherUserClient, shared_tmp

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's state directory is root's"),
    pytest.mark.serial,  # holds the daemon to 1 s under a load of its own: after the rest
]


def test_a_state_file_write_that_blocks_holds_no_client(tmp_path: Path) -> None:
    """A run's resume state is written (and fsync'ed) on a thread of its own: a FIFO where
    the state's temporary file goes (a disk that does not answer) had stopped the loop in
    open(), so the run got no welcome and nobody a status."""
    with running_daemon(tmp_path) as d:
        fifo = d.state / "sessions" / ".stuck.json.tmp"
        os.mkfifo(fifo)
        c = RawClient(d.socket, timeout=5.0)
        reader = -1
        try:
            welcome = c.hello("stuck")
            assert welcome["op"] == "welcome" and welcome["run_id"] == "stuck", welcome
            started = time.monotonic()
            query_status(str(d.socket), timeout=3.0)
            assert time.monotonic() - started < 1.0
        finally:
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the write goes on (and fails)
        try:
            d.wait_log(r"run stuck: cannot save its resume state \(")
        finally:
            os.close(reader)
            c.sock.close()
        assert d.alive()


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_a_users_worker_starts_without_the_loop_and_runs_at_the_users_priority(tmp_path: Path) -> None:
    """The worker looks its user's groups up itself, before it drops: the user database may
    be LDAP and take seconds, which the loop (every client's answer) had waited for. Seen by
    tracing the daemon's main thread while a run of uid 65534 starts its worker. And the
    unit's Nice=-5 is the loop's, not a user's: the worker sets itself back to 0."""
    with shared_tmp() as base, running_daemon(tmp_path) as d:
        assert d.proc is not None
        (zygote,) = _children(d.proc.pid)
        os.setpriority(os.PRIO_PROCESS, zygote, -5)  # as under the unit: the daemon's children inherit it
        out = tmp_path / "strace.out"
        tracer = subprocess.Popen(
            ["strace", "-qq", "-e", "trace=open,openat", "-o", str(out), "-p", str(d.proc.pid)],
            stderr=subprocess.DEVNULL,
        )
        c = None
        try:
            wait_until(out.exists, timeout=10.0, what="strace attached")
            time.sleep(0.5)
            c = OtherUserClient(d.socket, "worker")
            c.record(0, "run_start", schema=1)
            c.record(1, "watch", path=str(base), role="checkpoint")
            c.wait_ack(1)
            wait_until(lambda: _children(d.proc.pid, grand=True), timeout=15.0, what="a worker")
            (worker,) = _children(d.proc.pid, grand=True)
            wait_until(lambda: os.getpriority(os.PRIO_PROCESS, worker) == 0, timeout=5.0, what="nice 0")
        finally:
            tracer.terminate()
            tracer.wait()
            if c is not None:
                c.close()
        opened = out.read_text()
        assert "/proc/" in opened  # the trace saw the loop's work (the run's /proc entries)
        assert "/etc/group" not in opened and "/etc/passwd" not in opened, opened[-2000:]


def _children(pid: int, *, grand: bool = False) -> list[int]:
    kids = [c.pid for c in psutil.Process(pid).children()]
    return [g.pid for k in kids for g in psutil.Process(k).children()] if grand else kids
