"""sd_notify on real datagram sockets, path and abstract names."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

from epochwatch.daemon.notify import Notifier, watchdog_interval


@pytest.mark.parametrize("abstract", [False, True])
def test_messages_reach_the_socket(abstract: bool) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"ew-unit-notify-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="ewn", dir="/tmp"))
    if abstract:
        listener.bind("\0" + name)
        env = {"NOTIFY_SOCKET": "@" + name}
    else:
        listener.bind(str(tmp / "n.sock"))
        env = {"NOTIFY_SOCKET": str(tmp / "n.sock")}
    listener.settimeout(2)
    notifier = Notifier.from_env(env)
    try:
        assert notifier.enabled
        assert notifier.ready("2 runs")
        assert listener.recv(4096) == b"READY=1\nSTATUS=2 runs"
        notifier.watchdog()
        assert listener.recv(4096) == b"WATCHDOG=1"
        notifier.reloading()
        lines = listener.recv(4096).decode().splitlines()
        assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
        notifier.stopping()
        assert listener.recv(4096) == b"STOPPING=1"
    finally:
        notifier.close()
        listener.close()
        (tmp / "n.sock").unlink(missing_ok=True)
        tmp.rmdir()


def test_without_notify_socket_everything_is_a_no_op(tmp_path: Path) -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled and not notifier.ready() and not notifier.watchdog()
    gone = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert gone.enabled and not gone.status("x")  # a failed send never raises
    gone.close()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
