"""HostSampler and memory_limit_bytes: real /proc for this process and a child, fake
cgroup trees for the limit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from epochwatch.samplers.base import Sampler
from epochwatch.samplers.host import HostSampler, memory_limit_bytes

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

ALWAYS = {"rss_bytes", "threads", "cpu_user_seconds", "cpu_system_seconds", "sys_total_bytes"}


def _no_nones(block: dict) -> None:
    assert all(v is not None for v in block.values()), block


def test_is_a_sampler() -> None:
    sampler = HostSampler()
    assert isinstance(sampler, Sampler)
    assert sampler.name == "host"


def test_own_process_first_and_second_sample() -> None:
    sampler = HostSampler()
    first = sampler.sample()
    assert first.keys() >= ALWAYS
    assert "cpu_seconds" not in first  # no previous sample to diff against
    assert "cpu_pct" not in first and "io_read_bytes" not in first  # detailed only
    _no_nones(first)
    assert first["rss_bytes"] > 1 << 20
    assert first["threads"] >= 1
    assert 0 < first["sys_available_bytes"] <= first["sys_total_bytes"]

    sum(i * i for i in range(200_000))  # burn a little CPU
    second = sampler.sample()
    assert second["cpu_seconds"] > 0
    assert second["cpu_user_seconds"] + second["cpu_system_seconds"] >= (
        first["cpu_user_seconds"] + first["cpu_system_seconds"]
    )


@linux_only
def test_linux_fields() -> None:
    block = HostSampler().sample()
    assert {"swap_bytes", "open_fds", "sys_swap_used_bytes"} <= block.keys()
    assert block["open_fds"] >= 3


@linux_only
def test_cpu_demand_fields() -> None:
    """Runnable tasks and usable CPUs each sample; CPU stall seconds from the second (a delta)."""
    sampler = HostSampler()
    first = sampler.sample()
    assert first["cpus"] >= 1 and first["runnable"] >= 1  # this process is running while it reads
    assert "cpu_pressure_some_seconds" not in first
    second = sampler.sample()
    if Path("/proc/pressure/cpu").exists():
        assert second["cpu_pressure_some_seconds"] >= 0.0
    else:
        assert "cpu_pressure_some_seconds" not in second


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@linux_only
def test_the_cpus_busy_time_and_the_workers_cpu_split_the_host_s_cpu() -> None:
    """What all tasks took of the CPUs this process may use, and what its worker processes
    used (live ones from /proc, ended ones from RUSAGE_CHILDREN, each counted once): less
    the process's own CPU, the rest is other tasks' (analysis/waiting.py)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    sampler = HostSampler()
    first = sampler.sample()
    assert "cpus_busy_seconds" not in first and "children_cpu_seconds" not in first  # deltas
    worker = ctx.Process(target=_burn, args=(0.6,))
    worker.start()
    used = psutil.Process(worker.pid)
    while sum(used.cpu_times()[:2]) < 0.2:  # a sample while it runs (a CPU time, not a sleep:
        time.sleep(0.01)  # the machine may be loaded) ...
    running = sampler.sample()
    worker.join()
    ended = sampler.sample()  # ... and one after it ended and was waited for
    total = running["children_cpu_seconds"] + ended["children_cpu_seconds"]
    assert running["children_cpu_seconds"] > 0.1, running
    assert 0.5 <= total <= 0.75, (running, ended)  # its 0.6 s, 10 ms ticks, once
    taken = running["cpus_busy_seconds"] + ended["cpus_busy_seconds"]
    assert taken >= total - 0.05, (running, ended)


def test_cpu_demand_unreadable_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    from epochwatch.samplers import host

    def unreadable(path: str) -> int:
        if path in ("/proc/loadavg", "/proc/pressure/cpu", "/proc/stat"):
            raise PermissionError(path)
        return real(path)

    real = host._open_proc  # the hook's own process keeps its /proc files open (_HeldFiles)
    monkeypatch.setattr(host, "_open_proc", unreadable)
    sampler = HostSampler()
    sampler.sample()
    block = sampler.sample()
    assert "runnable" not in block and "cpu_pressure_some_seconds" not in block
    assert "cpus_busy_seconds" not in block
    _no_nones(block)


def test_detailed_adds_cpu_pct_and_io() -> None:
    sampler = HostSampler(detailed=True)
    sampler.sample()
    _burn(0.05)  # CPU time, not wall time: under load a wall-time loop got under 10% of a CPU
    block = sampler.sample()
    assert block["cpu_pct"] > 10
    if sys.platform.startswith("linux"):
        assert block["io_read_bytes"] >= 0 and block["io_write_bytes"] >= 0


@linux_only
def test_swap_comes_from_vmswap(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_bytes(b"Name:\tpython\nVmRSS:\t  204800 kB\nVmSwap:\t    2048 kB\nThreads:\t7\n")
    sampler = HostSampler()
    sampler._status_path = str(status)
    block = sampler.sample()
    assert block["rss_bytes"] == 204800 * 1024
    assert block["swap_bytes"] == 2048 * 1024
    assert block["threads"] == 7


def test_unreadable_fields_are_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = psutil.Process()

    def denied() -> int:
        raise psutil.AccessDenied(proc.pid)

    monkeypatch.setattr(proc, "num_fds", denied, raising=False)
    monkeypatch.setattr(proc, "io_counters", denied, raising=False)
    block = HostSampler(proc=proc, detailed=True).sample()
    assert "open_fds" not in block and "io_read_bytes" not in block
    _no_nones(block)


@pytest.fixture
def child() -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_other_process(child: subprocess.Popen) -> None:
    sampler = HostSampler(child.pid, detailed=True)
    first = sampler.sample()
    assert first.keys() >= ALWAYS
    second = sampler.sample()
    assert second["cpu_pct"] >= 0
    assert second["rss_bytes"] > 0


def test_vanished_process_raises(child: subprocess.Popen) -> None:
    sampler = HostSampler(child.pid)
    sampler.sample()
    child.kill()
    child.wait()
    with pytest.raises(psutil.NoSuchProcess):
        sampler.sample()


@linux_only
def test_zombie_counts_as_vanished(child: subprocess.Popen) -> None:
    sampler = HostSampler(child.pid)
    sampler.sample()
    child.kill()
    deadline = time.monotonic() + 5
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(psutil.NoSuchProcess):  # ZombieProcess is a NoSuchProcess
        sampler.sample()


def test_sample_is_cheap() -> None:
    """A loose guard against slow calls (memory_full_info costs ~9 ms); the real figure
    is ~60-80 us. In the thread's CPU time: the wall time of 200 calls on a loaded host
    counts the waits for a CPU too (a run of the suite beside other work read over 1 ms)."""
    sampler = HostSampler()
    sampler.sample()
    n = 200
    start = time.thread_time()
    for _ in range(n):
        sampler.sample()
    per_call = (time.thread_time() - start) / n
    assert per_call < 1e-3, f"{per_call * 1e6:.0f} us per sample"


# memory_limit_bytes on fake /proc and /sys/fs/cgroup trees


def _tree(tmp_path: Path, cgroup: str, files: dict[str, str]) -> tuple[str, str]:
    proc_root = tmp_path / "proc"
    (proc_root / "self").mkdir(parents=True)
    (proc_root / "self" / "cgroup").write_text(cgroup)
    root = tmp_path / "cgroup"
    root.mkdir()
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(root), str(proc_root)


def test_limit_v2_takes_smallest_ancestor(tmp_path: Path) -> None:
    root, proc_root = _tree(
        tmp_path,
        "0::/user.slice/job/task\n",
        {
            "user.slice/memory.max": "8589934592\n",
            "user.slice/job/memory.max": "1073741824\n",
            "user.slice/job/task/memory.max": "max\n",
        },
    )
    assert memory_limit_bytes(root=root, proc_root=proc_root) == 1 << 30


def test_limit_v2_unlimited(tmp_path: Path) -> None:
    root, proc_root = _tree(tmp_path, "0::/a\n", {"a/memory.max": "max\n"})
    assert memory_limit_bytes(root=root, proc_root=proc_root) is None


def test_limit_v2_container_path_missing_uses_mount_root(tmp_path: Path) -> None:
    # Without a cgroup namespace the path names the host's view; the mount's root is ours.
    root, proc_root = _tree(tmp_path, "0::/system.slice/docker-abc.scope\n", {"memory.max": "536870912\n"})
    assert memory_limit_bytes(root=root, proc_root=proc_root) == 512 << 20


def test_limit_v1_hierarchical(tmp_path: Path) -> None:
    cgroup = "9:name=systemd:/\n4:memory:/docker/abc\n1:cpu:/\n0::/\n"
    root, proc_root = _tree(
        tmp_path,
        cgroup,
        {
            "memory/memory.stat": "cache 0\nhierarchical_memory_limit 2147483648\n",
            "memory/memory.limit_in_bytes": "9223372036854771712\n",
        },
    )
    assert memory_limit_bytes(root=root, proc_root=proc_root) == 2 << 30


def test_limit_v1_huge_means_none(tmp_path: Path) -> None:
    root, proc_root = _tree(
        tmp_path,
        "4:memory:/x\n",
        {"memory/x/memory.limit_in_bytes": "9223372036854771712\n"},
    )
    assert memory_limit_bytes(root=root, proc_root=proc_root) is None


@pytest.mark.parametrize(
    "cgroup, files",
    [
        ("garbage without colons\n", {}),
        ("0::/a\n", {"a/memory.max": "not a number\n"}),
        ("4:memory:/x\n", {"memory/x/memory.stat": "hierarchical_memory_limit oops\n"}),
    ],
)
def test_limit_never_raises(tmp_path: Path, cgroup: str, files: dict[str, str]) -> None:
    root, proc_root = _tree(tmp_path, cgroup, files)
    assert memory_limit_bytes(root=root, proc_root=proc_root) is None


def test_limit_without_proc(tmp_path: Path) -> None:
    assert memory_limit_bytes(proc_root=str(tmp_path / "missing")) is None


def test_limit_real_system_does_not_raise() -> None:
    value = memory_limit_bytes()
    assert value is None or value > 0


@pytest.mark.parametrize(
    ("status", "error"),
    [
        # killed: memory released, state not yet Z (the window the daemon must not report as 0 B)
        (b"Name:\tpython\nState:\tR (running)\nThreads:\t1\n", psutil.NoSuchProcess),
        (b"Name:\tpython\nState:\tZ (zombie)\nThreads:\t1\n", psutil.ZombieProcess),
        (b"Name:\tpython\nState:\tX (dead)\nVmRSS:\t 100 kB\n", psutil.ZombieProcess),
    ],
)
def test_an_exiting_process_is_gone_not_a_sample_without_memory(
    tmp_path: Path, status: bytes, error: type[Exception]
) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = HostSampler(child.pid, detailed=True)
        fake = tmp_path / "status"
        fake.write_bytes(status)
        sampler._status_path = str(fake)
        with pytest.raises(error):
            sampler.sample()
    finally:
        child.kill()
        child.wait()


def test_own_proc_files_stay_open_and_read_fresh_values() -> None:
    """The hook's own sampler keeps its /proc files open (pread from 0 gives the kernel's
    fresh text each time), closes them on close(), and a forked child opens its own."""
    import os

    sampler = HostSampler()
    before = sampler.sample()["rss_bytes"]
    ballast = bytearray(64 * 2**20)
    for i in range(0, len(ballast), 4096):  # touch every page
        ballast[i] = 1
    after = sampler.sample()["rss_bytes"]
    assert after >= before + 48 * 2**20, (before, after)
    held = sampler._read.__self__  # type: ignore[attr-defined]
    assert len(held._fds) >= 3
    held.read("/proc/self/status")  # opened here, in the parent
    pid = os.fork()
    if pid == 0:  # an inherited /proc/self file would still say the parent's pid
        try:
            mine = b"\nPid:\t%d\n" % os.getpid() in held.read("/proc/self/status")
            os._exit(0 if mine else 1)
        except BaseException:
            os._exit(2)
    assert os.waitpid(pid, 0)[1] == 0
    sampler.close()
    assert held._fds == {}
    del ballast


_CPU_WAIT = """
import os, subprocess, sys, time
from epochwatch.samplers.cpu_wait import Since
os.sched_setaffinity(0, {0})
rival = subprocess.Popen([sys.executable, "-c", "import os; os.sched_setaffinity(0, {0})\\nwhile True: pass"])
time.sleep(0.2)
waits = Since()
waits()
time.sleep(0.4)
slept = waits()
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
worked = waits()
rival.kill()
print(slept, worked)
"""


@linux_only
def test_the_threads_wait_for_a_cpu_counts_the_cpu_taken_not_a_sleep() -> None:
    """Pinned to one CPU beside a busy rival, 0.3 s of work waits about as long again for
    the CPU; a sleep waits for none (it is not on a run queue)."""
    if not Path("/proc/self/task").exists() or not Path(f"/proc/self/task/{os.getpid()}/schedstat").exists():
        pytest.skip("the kernel keeps no schedstat")
    out = subprocess.run(
        [sys.executable, "-c", _CPU_WAIT], capture_output=True, text=True, timeout=60, check=True
    )
    slept, worked = (float(v) for v in out.stdout.split())
    assert slept < 0.05, out.stdout
    assert worked > 0.15, out.stdout


def test_own_samples_say_how_long_the_threads_waited_for_a_cpu() -> None:
    sampler = HostSampler()
    assert "cpu_wait_seconds" not in sampler.sample()
    if Path(f"/proc/self/task/{os.getpid()}/schedstat").exists():
        assert sampler.sample()["cpu_wait_seconds"] >= 0.0


@linux_only
def test_a_child_forked_while_another_thread_reads_the_cpu_wait_does_not_hang() -> None:
    code = """
import os, sys, threading
from epochwatch.samplers.cpu_wait import OWN
OWN.total()
held, release = threading.Event(), threading.Event()
def hold():
    with OWN._lock:  # a background sampler inside a reading at the fork
        held.set()
        release.wait()
threading.Thread(target=hold, daemon=True).start()
held.wait()
pid = os.fork()
if pid == 0:
    OWN.total()
    os._exit(0)
release.set()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
    subprocess.run([sys.executable, "-c", code], timeout=30, check=True)
