"""Thinning of 1 Hz samples, within-epoch peaks, contention, and per-uid limits: pure logic."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from epochwatch.daemon.config import Limits, Sampling
from epochwatch.daemon.contention import KEEP, ContentionScanner
from epochwatch.daemon.limits import UidLimits
from epochwatch.daemon.runsamplers import NvmlHub, ProcessChanged, RunSamplers
from epochwatch.daemon.sampling import Decimator, PeakTracker, compact_sample, gpu_process_memory
from tests.support import wait_until

NOBODY = 65534


def sample(t: float, rss: int, cpu: float = 10.0, gpu: int | None = None) -> dict:
    s: dict = {"t": t, "rss_bytes": rss, "cpu_pct": cpu, "threads": 4}
    if gpu is not None:
        s["gpu"] = {"devices": [{"index": 0, "process_memory_bytes": gpu}, {"index": 1}]}
    return s


def test_every_sample_at_first_then_windows_then_wider_windows() -> None:
    cfg = Sampling(full_rate_seconds=10, window_seconds=5, long_after_seconds=30, long_window_seconds=15)
    dec = Decimator(cfg, started=0.0)
    written = [out for t in range(60) if (out := dec.add(sample(float(t), 100 + t % 7))) is not None]
    early = [w for w in written if w["t"] < 10]
    assert [w["t"] for w in early] == list(range(10)) and all("samples" not in w for w in early)
    windows = [w for w in written if w["t"] >= 10]
    middle = [w for w in windows if w["t"] < 30]
    assert [w["samples"] for w in middle] == [5, 5, 5, 5]
    assert all(w["window_seconds"] == 5.0 for w in middle)
    late = [w for w in windows if w["t"] >= 30]
    assert [w["samples"] for w in late] == [15, 15]
    assert late[0]["min"]["rss_bytes"] == 100 and late[0]["max"]["rss_bytes"] == 106
    assert len(written) == 10 + 4 + 2


def test_flush_writes_the_open_window_once() -> None:
    dec = Decimator(Sampling(full_rate_seconds=0, window_seconds=10), started=0.0)
    assert dec.add(sample(1.0, 5)) is None and dec.add(sample(2.0, 9, cpu=80)) is None
    out = dec.flush()
    assert out is not None and out["samples"] == 2 and out["max"] == {"rss_bytes": 9, "cpu_pct": 80}
    assert dec.flush() is None


def test_peaks_are_maxima_inside_the_epoch() -> None:
    peaks = PeakTracker()
    for t, rss, cpu, gpu in [(0, 10, 5, 1), (1, 50, 90, 7), (2, 20, 40, 3), (3, 99, 1, 2)]:
        peaks.add(sample(float(t), rss, cpu, gpu))
    assert peaks.peaks(0.5, 2.2) == {
        "rss_bytes": 50,
        "gpu_process_memory_bytes": 7,
        "cpu_pct": 90,
        "samples": 2,
    }
    nearest = peaks.peaks(3.9, 3.95)  # shorter than the interval: the nearest sample, samples 0
    assert nearest is not None and nearest["rss_bytes"] == 99 and nearest["samples"] == 0
    assert PeakTracker().peaks(0, 1) is None


def test_gpu_process_memory_and_compact_sample() -> None:
    assert gpu_process_memory(sample(0, 1, gpu=5)) == 5
    assert gpu_process_memory(sample(0, 1)) is None
    assert compact_sample({**sample(1.0, 7), "memory_limit_bytes": 9, "io_read_bytes": 3}) == {
        "t": 1.0,
        "rss_bytes": 7,
        "cpu_pct": 10.0,
        "memory_limit_bytes": 9,
        "threads": 4,
    }


def test_contention_leaves_the_run_out_and_ranks_by_cpu() -> None:
    scanner = ContentionScanner(
        lambda: [{"pid": 1, "device": 0, "used_memory_bytes": 5}, {"pid": 42, "device": 0}]
    )
    assert scanner.scan() is None  # the first scan only primes
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass  # be busy, so this process shows up
    result = scanner.scan()
    assert result is not None and "host_cpu_pct" in result
    # the daemon's own process is never listed; a run is never listed as contending with itself
    assert all(e["pid"] != os.getpid() for e in result["cpu"])
    view = scanner.for_run(42, top=3, uid=0)
    assert view is not None and [e["pid"] for e in view["gpu"]] == [1]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another user")
def test_a_run_sees_other_users_processes_only_by_their_share() -> None:
    """Under hidepid a user cannot see other users' processes, so their run's trace must not
    show them either: names and pids only of the run's own uid's processes (root sees all)."""
    spin = ["sh", "-c", "while :; do :; done"]
    procs = [subprocess.Popen(spin), subprocess.Popen(spin, user=NOBODY, group=NOBODY)]
    try:
        scanner = ContentionScanner()
        scanner.scan()
        time.sleep(0.5)
        scanner.scan()
        theirs = scanner.for_run(1, top=KEEP, uid=NOBODY)
        everyone = scanner.for_run(1, top=KEEP, uid=0)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert theirs is not None and everyone is not None
    rooted, nobodys = procs[0].pid, procs[1].pid
    assert {rooted, nobodys} <= {e["pid"] for e in everyone["cpu"]}
    named = {e["pid"]: e["name"] for e in theirs["cpu"] if "name" in e}
    assert named.get(nobodys) == "sh" and rooted not in named
    unnamed = [e for e in theirs["cpu"] if "name" not in e]
    assert unnamed and all(set(e) == {"cpu_pct"} for e in unnamed)  # root's spinner among them


def test_stale_previous_scan_primes_again() -> None:
    scanner = ContentionScanner()
    scanner.scan()
    time.sleep(0.02)
    assert scanner.scan(max_age=0.01) is None and scanner.latest is None


def test_uid_limits() -> None:
    limits = UidLimits(
        Limits(
            max_connections=3,
            max_connections_per_uid=2,
            messages_per_second_per_uid=10,
            message_burst_per_uid=5,
        )
    )
    assert limits.open_connection(1000) is None and limits.open_connection(1000) is None
    assert "per-uid limit" in (limits.open_connection(1000) or "")
    assert limits.open_connection(1001) is None
    assert "its limit" in (limits.open_connection(1002) or "")
    limits.close_connection(1000)
    assert limits.open_connection(1002) is None
    assert limits.run_refused(7, 64) and limits.run_refused(7, 1) is None
    assert limits.take(5, 5) == 0.0
    pause = limits.take(5, 5)
    assert 0.4 < pause <= 0.5  # 5 over at 10/s
    assert limits.take(6, 1) == 0.0  # another uid has its own bucket


def test_the_executable_is_named_not_followed_and_an_exec_is_seen(tmp_path: Path) -> None:
    """The daemon names a run's executable by readlink (a stat through /proc/<pid>/exe would
    reach the user's file system): the binary deleted under the running process is no
    change; the process exec'ing another program is."""
    binary = tmp_path / "sleeper"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    kept = subprocess.Popen([str(binary), "30"])
    execs = subprocess.Popen(["sh", "-c", "read line; exec sleep 30"], stdin=subprocess.PIPE)
    try:
        wait_until(lambda: psutil.Process(kept.pid).exe() == str(binary), what="the binary runs")
        samplers = [RunSamplers(p.pid, "r", NvmlHub(), uid=os.getuid()) for p in (kept, execs)]
        for s in samplers:
            s.sample()
        binary.unlink()
        samplers[0].sample()  # the same program, its file gone
        assert execs.stdin is not None
        execs.stdin.write(b"go\n")
        execs.stdin.close()
        wait_until(lambda: psutil.Process(execs.pid).name() == "sleep", what="the exec")
        with pytest.raises(ProcessChanged, match="executable"):
            samplers[1].sample()
    finally:
        for p in (kept, execs):
            p.kill()
            p.wait()
