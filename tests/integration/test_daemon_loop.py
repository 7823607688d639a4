"""The event loop waits on nothing a user or the disk can hold: every client's answer
goes through it, so one blocked call there stalls every user's `status`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from epochwatch.trace.client import query_status
from tests.integration.daemon_harness import RawClient, running_daemon

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon's state directory is root's")


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
