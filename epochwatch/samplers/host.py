"""Host memory and CPU of one process, read from psutil and /proc.

The hook samples its own process at every epoch end, inside training, so one sample
must stay well under a millisecond: it reads /proc/<pid>/status and /proc/meminfo once
each, and lets psutil's `oneshot()` share one read of /proc/<pid>/stat between the CPU
times and the process state. `Process.memory_full_info()` would give swap too, but it
parses smaps (about 9 ms for a TF process), so swap comes from `VmSwap` instead.

Each sample also says whether other tasks want the CPU, which is what separates a process
that waits (sleep, I/O, a lock) from one that competes for a core: the host's runnable
tasks (`runnable`, from /proc/loadavg) against the CPUs this process may use (`cpus`), and
the seconds during which some task stalled waiting for a CPU since the previous sample
(`cpu_pressure_some_seconds`, from /proc/pressure/cpu where the kernel has PSI). Two small
reads, a few microseconds each. For its own process, the seconds its threads waited for a
CPU (`cpu_wait_seconds`, cpu_wait.py): whether the CPU was taken from it, not only wanted.

The daemon samples attached processes at 1 Hz with `detailed=True` (CPU percent, I/O).
A process that has gone (exited, reaped, or a zombie, or a pid reused by another
process in detailed mode) raises `psutil.NoSuchProcess`: that is how the daemon learns a
run vanished. Everything else that cannot be read on this platform or with these
permissions is left out of the block, never set to None.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil

from epochwatch.samplers import cpu_wait

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

# A cgroup limit at or above this is "no limit": cgroup v1 reports 2**63 - 4096 rounded to
# pages, and nobody limits a process to an exbibyte.
_NO_LIMIT = 1 << 60
# The cgroup limit rarely changes; re-read it at most this often (it costs a few file reads).
_LIMIT_REFRESH_SECONDS = 60.0
_CGROUP_ROOT = "/sys/fs/cgroup"


class HostSampler:
    """The `host` block of an epoch record for one process (this one by default).

    `proc` lets a caller (or a test) hand in the psutil.Process to read; `pid` picks
    one by number. With `detailed=True` the block also has `cpu_pct`, `io_read_bytes`
    and `io_write_bytes`, and each sample checks the pid still names the same process.
    """

    name = "host"

    def __init__(
        self,
        pid: int | None = None,
        *,
        proc: psutil.Process | None = None,
        detailed: bool = False,
    ) -> None:
        self._proc = proc if proc is not None else psutil.Process(pid)
        self.pid = self._proc.pid
        self.detailed = detailed
        self._status_path = f"/proc/{self.pid}/status"
        self._procfs = sys.platform.startswith("linux") and os.path.exists(self._status_path)
        self._own = self.pid == os.getpid()
        self._last_cpu: float | None = None
        self._last_time: float | None = None
        self._limit: int | None = None
        self._limit_read_at = float("-inf")
        allowed = _allowed_cpus(self.pid)
        self._cpus = len(allowed) if allowed else os.cpu_count()
        # The CPUs whose busy time is read: those it may use, where fewer than the host's.
        self._cpu_set = allowed if allowed and len(allowed) < (os.cpu_count() or 0) else None
        self._busy: float | None = None  # busy seconds of those CPUs at the last sample
        self._children: dict[int, float] = {}  # CPU seconds of each worker process, last sample
        self._reaped: float | None = None  # CPU seconds of the children waited for, last sample
        self._pressure: float | None = None  # cumulative "some" stall seconds at the last sample
        # The hook samples its own process every epoch: its /proc files stay open and are
        # re-read from offset 0. The daemon's samplers of other processes open per read.
        self._read = _HeldFiles().read if self._own and self._procfs else _read_proc
        self._cpu_wait = cpu_wait.Since() if self._own and self._procfs else None

    def sample(self) -> dict[str, Any]:
        """One `host` block; raises psutil.NoSuchProcess when the process is gone."""
        proc = self._proc
        out: dict[str, Any] = {}
        now = time.monotonic()
        # oneshot() lets status() and cpu_times() share one parse of /proc/<pid>/stat;
        # our own process needs neither (getrusage is cheaper and finer), so skip its cost.
        with contextlib.nullcontext() if self._own else proc.oneshot():
            out.update(self._read_status() if self._procfs else _portable_memory(proc))
            if not self._own and proc.status() == psutil.STATUS_ZOMBIE:
                # Exited but not reaped: finished, as far as anyone sampling it cares.
                raise psutil.ZombieProcess(self.pid)
            cpu = (_own_cpu_times() if self._own else None) or _try(proc.cpu_times)
            fds = _try(proc.num_fds) if hasattr(proc, "num_fds") else None
            io = _try(proc.io_counters) if self.detailed and hasattr(proc, "io_counters") else None
        if self.detailed and not self._own and not proc.is_running():
            # The pid now names another process (psutil compares creation times).
            raise psutil.NoSuchProcess(self.pid)

        if cpu is not None:
            user, system = cpu[0], cpu[1]
            out["cpu_user_seconds"] = round(user, 6)
            out["cpu_system_seconds"] = round(system, 6)
            total = user + system
            if self._last_cpu is not None and self._last_time is not None:
                out["cpu_seconds"] = round(max(0.0, total - self._last_cpu), 6)
                if self.detailed and now > self._last_time:
                    pct = 100.0 * (total - self._last_cpu) / (now - self._last_time)
                    out["cpu_pct"] = round(max(0.0, pct), 1)
            self._last_cpu, self._last_time = total, now
        if fds is not None:
            out["open_fds"] = fds
        if io is not None:
            out["io_read_bytes"] = io.read_bytes
            out["io_write_bytes"] = io.write_bytes

        out.update(_system_memory(self._read) if self._procfs else _portable_system_memory())
        if now - self._limit_read_at >= _LIMIT_REFRESH_SECONDS:
            self._limit = memory_limit_bytes(self.pid)
            self._limit_read_at = now
        if self._limit is not None:
            out["memory_limit_bytes"] = self._limit
        if self._procfs:
            out.update(self._cpu_demand())
        return out

    def _cpu_demand(self) -> dict[str, Any]:
        """Runnable tasks, usable CPUs, and CPU stall seconds since the last sample."""
        out: dict[str, Any] = {}
        if self._cpus:
            out["cpus"] = self._cpus
        runnable = _runnable(self._read)
        if runnable is not None:
            out["runnable"] = runnable
        total = _cpu_pressure_some(self._read)
        if total is not None:
            if self._pressure is not None and total >= self._pressure:
                out["cpu_pressure_some_seconds"] = round(total - self._pressure, 6)
            self._pressure = total
        used = cpu_seconds_used(self._read, self._cpu_set)
        busy = used[0] if used is not None else None
        if busy is not None:
            if self._busy is not None and busy >= self._busy:
                out["cpus_busy_seconds"] = round(busy - self._busy, 6)
                if self._own:
                    out["children_cpu_seconds"] = round(self._children_cpu(), 6)
            self._busy = busy
        waited = self._cpu_wait() if self._cpu_wait is not None else None
        if waited is not None:
            out["cpu_wait_seconds"] = round(waited, 6)
        return out

    def _children_cpu(self) -> float:
        """CPU seconds this process's worker processes used since the last sample: the run's
        own work, not another task's, when the CPUs' busy time is split. Live ones are
        multiprocessing's (a PyDataset's or a DataLoader's workers); those that ended and
        were waited for are in RUSAGE_CHILDREN (a Keras fit's PyDataset starts its pool
        again each epoch), less what was counted of them while they ran."""
        now: dict[int, float] = {}
        for child in _mp_children():
            cpu = _stat_cpu_seconds(child.pid) if child.pid is not None else None
            if cpu is not None:
                now[child.pid] = cpu
        used = sum(max(0.0, cpu - self._children.get(pid, 0.0)) for pid, cpu in now.items())
        reaped = _reaped_children_cpu()
        if reaped is not None and self._reaped is not None:
            counted = sum(cpu for pid, cpu in self._children.items() if pid not in now)
            used += max(0.0, reaped - self._reaped - counted)
        self._children, self._reaped = now, reaped
        return used

    def close(self) -> None:
        held = getattr(self._read, "__self__", None)
        if isinstance(held, _HeldFiles):
            held.close()

    def _read_status(self) -> dict[str, int]:
        """rss, swap and threads from one read of /proc/<pid>/status."""
        try:
            data = self._read(self._status_path)
        except (FileNotFoundError, ProcessLookupError):
            raise psutil.NoSuchProcess(self.pid) from None
        out: dict[str, int] = {}
        state = _state(data)
        if state in (b"Z", b"X"):
            raise psutil.ZombieProcess(self.pid)  # exited, not yet reaped: finished
        rss = _field(data, b"\nVmRSS:")
        if rss is not None:
            out["rss_bytes"] = rss * 1024  # kB in /proc means KiB
        elif not self._own:
            # A user process without VmRSS is in the middle of exiting (its memory is
            # already released, its state not yet Z): as good as gone, not a 0-byte sample.
            raise psutil.NoSuchProcess(self.pid)
        swap = _field(data, b"\nVmSwap:")
        if swap is not None:
            out["swap_bytes"] = swap * 1024
        threads = _field(data, b"\nThreads:")
        if threads is not None:
            out["threads"] = threads
        return out


def _state(data: bytes) -> bytes | None:
    """The one-letter state of /proc/<pid>/status ("State:\tR (running)")."""
    at = data.find(b"\nState:")
    if at < 0:
        return None
    rest = data[at + 7 : at + 16].lstrip()
    return rest[:1] or None


def _read_proc(path: str) -> bytes:
    """A whole /proc file in one read; os.open skips io's buffering (a third faster)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def _open_proc(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


class _HeldFiles:
    """/proc files kept open and re-read with pread from offset 0, where the kernel writes
    them anew: no open and close per sample (status 24 -> 9 us, meminfo 22 -> 9, loadavg
    17 -> 2, pressure 16 -> 3, on the 2-core VM). In a forked child the files are opened
    again: an inherited /proc/self file would still describe the parent."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._pid = os.getpid()

    def read(self, path: str) -> bytes:
        if os.getpid() != self._pid:
            self.close()
            self._pid = os.getpid()
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = _open_proc(path)
        return os.pread(fd, 1 << 16, 0)

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


def _field(data: bytes, key: bytes) -> int | None:
    """The first number after `key` (which starts with a newline) in a /proc text file."""
    start = data.find(key)
    if start < 0:
        return None
    start += len(key)
    end = data.find(b"\n", start)
    parts = data[start : end if end >= 0 else len(data)].split()
    try:
        return int(parts[0])
    except (IndexError, ValueError):
        return None


def _own_cpu_times() -> tuple[float, float] | None:
    """(user, system) seconds of this process: getrusage is a microsecond-resolution syscall,
    where /proc/self/stat counts clock ticks (10 ms)."""
    if resource is None:
        return None
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _try(fn: Any) -> Any:
    """Call a psutil getter; None when this platform or our permissions do not allow it.

    NoSuchProcess (and its ZombieProcess) is not caught: a vanished process must reach
    the caller.
    """
    try:
        return fn()
    except (psutil.AccessDenied, NotImplementedError, PermissionError):
        return None


def _mp_children() -> list[Any]:
    """The processes multiprocessing started here and has not reaped, read without reaping
    (active_children() would waitpid them from the sampler's thread, racing the training
    thread's own join)."""
    module = sys.modules.get("multiprocessing.process")
    try:
        return list(getattr(module, "_children", ()))
    except (TypeError, RuntimeError):
        return []


def _reaped_children_cpu() -> float | None:
    if resource is None:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stat_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process from /proc/<pid>/stat, or None when it is gone."""
    try:
        data = _read_proc(f"/proc/{pid}/stat")
        fields = data[data.rfind(b")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def _allowed_cpus(pid: int) -> frozenset[int] | None:
    """The CPUs the process may run on, or None where the platform cannot say."""
    try:
        return frozenset(os.sched_getaffinity(pid))
    except (AttributeError, OSError):
        return None


def cpu_seconds_used(
    read: Callable[[str], bytes] = _read_proc, cpus: frozenset[int] | None = None
) -> tuple[float, float] | None:
    """(busy, all) seconds of these CPUs (None: the host's) since boot, from /proc/stat:
    busy is every field but idle and iowait (guest time is already in user). Busy less
    this process's own CPU time is what other tasks took of the CPUs it may use, which
    tells a host that got busier from a process that waits (PSI cannot: it counts stalls
    of the process's own threads too, and a stall share falls as the epochs lengthen)."""
    try:
        data = read("/proc/stat")
    except OSError:
        return None
    busy = total = 0
    try:
        for line in data.split(b"\n"):
            if not line.startswith(b"cpu"):
                break
            name, *fields = line.split()
            wanted = name == b"cpu" if cpus is None else name != b"cpu" and int(name[3:]) in cpus
            if wanted:
                ticks = [int(f) for f in fields[:8]]
                busy += sum(ticks) - ticks[3] - ticks[4]
                total += sum(ticks)
    except (IndexError, ValueError):
        return None
    return (busy / _CLK_TCK, total / _CLK_TCK) if total else None


def _runnable(read: Callable[[str], bytes] = _read_proc) -> int | None:
    """Tasks running or ready to run now, host-wide (the 4th field of /proc/loadavg: "3/812")."""
    try:
        data = read("/proc/loadavg")
        return int(data.split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


def _cpu_pressure_some(read: Callable[[str], bytes] = _read_proc) -> float | None:
    """Cumulative seconds in which some task waited for a CPU (PSI "some total=" in microseconds)."""
    try:
        data = read("/proc/pressure/cpu")
    except OSError:
        return None
    at = data.find(b"total=")
    if not data.startswith(b"some") or at < 0:
        return None
    try:
        return int(data[at + 6 :].split()[0]) / 1e6
    except (IndexError, ValueError):
        return None


def _portable_memory(proc: psutil.Process) -> dict[str, int]:
    """rss and threads where there is no /proc (macOS, Windows); swap stays absent."""
    out: dict[str, int] = {}
    mem = _try(proc.memory_info)
    if mem is not None:
        out["rss_bytes"] = mem.rss
    threads = _try(proc.num_threads)
    if threads is not None:
        out["threads"] = threads
    return out


def _system_memory(read: Callable[[str], bytes] = _read_proc) -> dict[str, int]:
    """Available, total and swap used, from one read of /proc/meminfo."""
    try:
        data = b"\n" + read("/proc/meminfo")
    except OSError:
        return _portable_system_memory()
    out: dict[str, int] = {}
    available = _field(data, b"\nMemAvailable:")
    if available is not None:
        out["sys_available_bytes"] = available * 1024
    total = _field(data, b"\nMemTotal:")
    if total is not None:
        out["sys_total_bytes"] = total * 1024
    swap_total = _field(data, b"\nSwapTotal:")
    swap_free = _field(data, b"\nSwapFree:")
    if swap_total is not None and swap_free is not None:
        out["sys_swap_used_bytes"] = (swap_total - swap_free) * 1024
    return out


def _portable_system_memory() -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(Exception):
        vm = psutil.virtual_memory()
        out["sys_available_bytes"] = vm.available
        out["sys_total_bytes"] = vm.total
    with contextlib.suppress(Exception):
        out["sys_swap_used_bytes"] = psutil.swap_memory().used
    return out


def memory_limit_bytes(
    pid: int | None = None, *, root: str = _CGROUP_ROOT, proc_root: str = "/proc"
) -> int | None:
    """The cgroup memory limit of a process (this one by default), or None when unlimited.

    cgroup v2: the smallest `memory.max` on the way from the process's cgroup up to the
    root (a parent's limit binds its children). cgroup v1: `hierarchical_memory_limit`
    from memory.stat, which already is that minimum, else `memory.limit_in_bytes`.
    Inside a container the cgroup path in /proc/<pid>/cgroup may not exist under the
    mounted hierarchy (its root is the container's own cgroup); the walk up then ends
    at the mount's root, which is the container's limit. "max" and values of an exbibyte
    or more mean no limit. A limit above the machine's memory is returned as is: the
    caller compares it with `sys_total_bytes`. Reads files only; never raises. `root` and
    `proc_root` point elsewhere for tests.
    """
    try:
        with open(os.path.join(proc_root, str(pid) if pid is not None else "self", "cgroup")) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    v1_path: str | None = None
    v2_path: str | None = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2_path = path
        elif "memory" in controllers.split(","):
            v1_path = path
    try:
        if v1_path is not None:
            return _v1_limit(os.path.join(root, "memory"), v1_path)
        if v2_path is not None:
            return _v2_limit(root, v2_path)
    except Exception:
        return None
    return None


def _ancestors(base: str, cgroup_path: str) -> list[str]:
    """base/<cgroup_path>, then each parent up to and including base."""
    parts = [p for p in cgroup_path.split("/") if p and p not in (".", "..")]
    return [os.path.join(base, *parts[:i]) for i in range(len(parts), -1, -1)]


def _v2_limit(base: str, cgroup_path: str) -> int | None:
    limits = (_read_int(os.path.join(directory, "memory.max")) for directory in _ancestors(base, cgroup_path))
    return min((limit for limit in limits if limit is not None), default=None)


def _v1_limit(base: str, cgroup_path: str) -> int | None:
    for directory in _ancestors(base, cgroup_path):
        stat = os.path.join(directory, "memory.stat")
        if os.path.exists(stat):
            try:
                with open(stat) as f:
                    for line in f:
                        if line.startswith("hierarchical_memory_limit "):
                            value = int(line.split()[1])
                            return value if value < _NO_LIMIT else None
            except (OSError, ValueError):
                pass
            return _read_int(os.path.join(directory, "memory.limit_in_bytes"))
    return None


def _read_int(path: str) -> int | None:
    """An integer limit file: None when missing, unreadable, "max" or effectively unlimited."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    value = int(text)
    return value if value < _NO_LIMIT else None
