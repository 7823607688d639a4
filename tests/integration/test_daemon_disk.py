"""Issue 18, items 3 and 6 on the daemon's side: a full disk and byte limits.

A full disk is real: the daemon runs in a private mount namespace (`unshare -m`) with a
1 MiB tmpfs over its traces directory, reached from the test through /proc/<pid>/root.
Byte limits are the daemon's config. Either way a run that cannot be written is said
once (one log line however often its hook comes back), its hook is told why and keeps
its records, and every other run is written as before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.daemon_harness import PY, DaemonProc, RawClient, running_daemon
from tests.integration.other_user import NOBODY, OtherUserClient

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount namespace, other uids)")


def _epochs(d: DaemonProc, run_id: str) -> list[int]:
    return [r["epoch"] for r in d.trace(run_id) if r["type"] == "epoch"]


def _send_epochs(c: RawClient, first_seq: int, epochs: range, pad: int = 0) -> int:
    """Send the epochs; a daemon that refuses the run may close the connection before the
    last one is sent (its error message stays readable): the sending then stops."""
    seq = first_seq
    for n in epochs:
        try:
            c.record(seq, "epoch", epoch=n, seconds=0.1, pad="x" * pad)
        except (BrokenPipeError, ConnectionResetError):
            break
        seq += 1
    return seq


def _refused(c: RawClient) -> dict:
    """The daemon's error message on a connection it then closes."""
    while True:
        msg = c.recv()
        assert msg is not None, "closed without an error message"
        if msg.get("op") == "error":
            assert c.closed_by_peer()
            return msg


class TmpfsDaemon(DaemonProc):
    """The daemon in its own mount namespace, its traces on a 1 MiB tmpfs."""

    def start(self, wait: bool = True) -> TmpfsDaemon:
        traces = self.state / "traces"
        traces.mkdir(parents=True, exist_ok=True)
        cmd = [PY, "-m", "epochwatch", "daemon", "--socket", str(self.socket), "--state-dir", str(self.state)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        script = f'mount -t tmpfs -o size=1m,mode=0711 ew18 "{traces}" && exec "$@"'
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *cmd],
                stdout=log,
                stderr=log,
                env=self.env,
                cwd=self.root,
            )
        if wait:
            self.wait_ready(1)
        return self

    @property
    def traces(self) -> Path:  # the tmpfs, as the daemon sees it
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/root") / str(self.state / "traces").lstrip("/")


@needs_root
def test_a_full_disk_is_said_once_per_run_and_the_runs_resume_when_space_returns(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    d = TmpfsDaemon(tmp_path, config="[limits]\nmin_free_bytes = 0\n")
    try:
        d.start()
        a = RawClient(d.socket)
        welcome = a.hello("full-a")  # its trace exists, empty: no page to finish
        ballast = d.traces / "ballast"
        fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
        try:  # fill the tmpfs to the last byte
            for size in (65536, 4096, 1):
                while True:
                    try:
                        os.write(fd, b"b" * size)
                    except OSError:
                        break
        finally:
            os.close(fd)
        a.record(0, "run_start", schema=1)
        _send_epochs(a, 1, range(20))
        msg = _refused(a)
        assert msg["code"] == "disk_full" and "No space left" in msg["error"]
        for _ in range(5):  # the hook comes back (with backoff): still said only once
            a = RawClient(d.socket)
            assert a.hello("full-a", token=welcome["token"])["next_seq"] == 0
            a.record(0, "run_start", schema=1)
            _send_epochs(a, 1, range(20))
            assert _refused(a)["code"] == "disk_full"
        b = RawClient(d.socket)
        b_run = b.hello("full-b")["run_id"]
        b.record(0, "run_start", schema=1)
        assert _refused(b)["code"] == "disk_full"
        assert d.log().count("cannot write its trace") == 2  # one per run
        assert d.alive()
        ballast.unlink()
        a = RawClient(d.socket)
        assert a.hello("full-a", token=welcome["token"])["next_seq"] == 0
        a.record(0, "run_start", schema=1)
        seq = _send_epochs(a, 1, range(20))
        a.wait_ack(seq - 1)
        assert _epochs(d, welcome["run_id"]) == list(range(20))  # each once, none torn
        b = RawClient(d.socket)
        b.hello("full-b", token=None)  # a new run works too
        assert d.log().count("its trace is written again") == 1
        assert b_run
    finally:
        d.cleanup()


LIMITS = """
[limits]
max_trace_bytes_per_run = 300000
max_trace_bytes_per_uid = 400000
min_free_bytes = 0
"""


@needs_root
def test_byte_limits_per_run_and_per_uid_stop_one_user_and_no_one_else(tmp_path: Path) -> None:
    with running_daemon(tmp_path, config=LIMITS) as d:
        hog = OtherUserClient(d.socket, "hog")
        hog_run = hog.welcome["run_id"]
        ok = RawClient(d.socket)
        ok_run = ok.hello("other-user")["run_id"]
        ok.record(0, "run_start", schema=1)
        hog.record(0, "run_start", schema=1)
        for n in range(40):  # 40 x 20 kB: the run's 300 kB are reached half way
            hog.record(n + 1, "epoch", epoch=n, seconds=0.1, pad="x" * 20000)
        msg = hog.next_msg()
        while msg.get("op") == "ack":
            msg = hog.next_msg()
        assert msg["op"] == "error" and msg["code"] == "trace_limit" and "300000 bytes" in msg["error"]
        size = (d.traces / f"{hog_run}.jsonl").stat().st_size
        assert 250_000 < size < 300_000 + 2000  # the limit, and its one notice
        notices = [r for r in d.trace(hog_run) if r["type"] == "notice" and r.get("part") == "limits"]
        assert len(notices) == 1
        # a second run of the same uid (the first one's process still there) may add only
        # what is left of the uid's 400 kB
        hog2 = OtherUserClient(d.socket, "hog2")
        hog2.record(0, "run_start", schema=1)
        for n in range(40):
            hog2.record(n + 1, "epoch", epoch=n, seconds=0.1, pad="x" * 20000)
        msg = hog2.next_msg()
        while msg.get("op") == "ack":
            msg = hog2.next_msg()
        assert msg["code"] == "trace_limit" and f"uid {NOBODY}" in msg["error"]
        hog2.close()
        hog.close()
        # root's run (another uid) is written whole meanwhile and after
        seq = _send_epochs(ok, 1, range(30), pad=1000)
        ok.wait_ack(seq - 1)
        assert _epochs(d, ok_run) == list(range(30))
        assert d.log().count("cannot write its trace") == 2  # hog and hog2, once each


@needs_root
def test_under_the_disk_reserve_nothing_is_written_and_it_is_said_once(tmp_path: Path) -> None:
    with running_daemon(tmp_path, config="[limits]\nmin_free_bytes = 1000000000000000\n") as d:
        c = RawClient(d.socket)
        run = c.hello("reserve")
        c.record(0, "run_start", schema=1)
        msg = _refused(c)
        assert msg["code"] == "disk_full" and "under the reserve" in msg["error"]
        for _ in range(3):
            c = RawClient(d.socket)
            c.hello("reserve", token=run["token"])
            c.record(0, "run_start", schema=1)
            _refused(c)
        time.sleep(1.2)  # a sampling tick: samples are not written either, nor said again
        assert d.log().count("cannot write its trace") == 1
        assert (d.traces / f"{run['run_id']}.jsonl").stat().st_size == 0
