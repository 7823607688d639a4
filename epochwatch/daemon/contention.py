"""Who else is busy on this host: the processes taking the most CPU, and who uses each GPU.

One scan of /proc serves every attached run (each run then leaves itself out), and it
runs every `contention_interval_seconds`, not every second: reading /proc/<pid>/stat
for a few hundred processes costs a few milliseconds, and contention that matters
lasts longer than that. The scan reads the raw stat files rather than building psutil
objects, to stay cheap. GPU entries come from NVML (`NvmlSampler.gpu_processes`: memory,
and each process's SM and memory utilisation since the previous scan where the GPU
gives it), with the process's name and user added from /proc where it is still there.

Each run sees its own user's processes by name (root's runs see all); another user's only
by what they take (CPU share; on a GPU also the pid NVML gives any user): under `hidepid`
a user cannot see other users' processes, and their run's trace must not show them either.
"""

from __future__ import annotations

import os
import pwd
import time
from typing import Any

from epochwatch.samplers.host import cpu_seconds_used

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
KEEP = 32  # busiest processes kept per scan; each run picks its top N from these


def _read_stat(pid: str) -> tuple[str, float, int] | None:
    """(comm, cpu seconds, owner uid) of one process, or None if it went away or is unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
            uid = os.fstat(f.fileno()).st_uid
    except OSError:
        return None
    lpar, rpar = data.find(b"("), data.rfind(b")")
    if lpar < 0 or rpar < 0:
        return None
    comm = data[lpar + 1 : rpar].decode(errors="replace")
    fields = data[rpar + 2 :].split()
    try:
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15
        ticks = int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        return None
    return comm, ticks / _CLK_TCK, uid


class ContentionScanner:
    """Keeps the previous scan to turn CPU times into percentages between scans."""

    def __init__(self, nvml_processes: Any = None) -> None:
        self._prev: dict[str, tuple[str, float, int]] = {}
        self._prev_time: float | None = None
        self._prev_host: tuple[float, float] | None = None
        self._nvml_processes = nvml_processes  # callable -> [{pid, device, used_memory_bytes}]
        self._self = str(os.getpid())
        self._users: dict[int, str] = {}
        self.latest: dict[str, Any] | None = None

    def scan(self, max_age: float = 60.0) -> dict[str, Any] | None:
        """Scan now; returns {host_cpu_pct, cpu: [...], gpu: [...]}, or None when there is no
        previous scan younger than `max_age` to compare with (this one then primes the next)."""
        now = time.monotonic()
        current: dict[str, tuple[str, float, int]] = {}
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return None
        for pid in pids:
            if pid == self._self:
                continue
            stat = _read_stat(pid)
            if stat is not None:
                current[pid] = stat
        host = cpu_seconds_used()
        result: dict[str, Any] | None = None
        if self._prev_time is not None and 0 < now - self._prev_time <= max_age:
            elapsed = now - self._prev_time
            busy: list[tuple[float, int, str, int]] = []
            for pid, (comm, cpu, uid) in current.items():
                before = self._prev.get(pid)
                if before is None or before[0] != comm:
                    continue
                pct = 100.0 * (cpu - before[1]) / elapsed
                if pct >= 1.0:
                    busy.append((pct, int(pid), comm, uid))
            busy.sort(reverse=True)
            result = {
                "cpu": [
                    {"pid": pid, "name": comm, "cpu_pct": round(pct, 1), "uid": uid}
                    for pct, pid, comm, uid in busy[:KEEP]
                ]
            }
            if host is not None and self._prev_host is not None:
                d_busy, d_total = host[0] - self._prev_host[0], host[1] - self._prev_host[1]
                if d_total > 0:
                    result["host_cpu_pct"] = round(100.0 * d_busy / d_total, 1)
            gpu = self._gpu(current)
            if gpu is not None:
                result["gpu"] = gpu
        self._prev, self._prev_time, self._prev_host = current, now, host
        self.latest = result
        return result

    def _gpu(self, names: dict[str, tuple[str, float, int]]) -> list[dict[str, Any]] | None:
        if self._nvml_processes is None:
            return None
        try:
            procs = self._nvml_processes()
        except Exception:
            self._nvml_processes = None
            return None
        if procs is None:
            return None
        out = []
        for p in procs:
            pid = p.get("pid")
            entry = dict(p)
            seen = names.get(str(pid))
            if seen is not None:
                entry["name"], entry["uid"], entry["user"] = seen[0], seen[2], self._user(seen[2])
            out.append(entry)
        out.sort(key=lambda e: (e.get("sm_util_pct") or 0, e.get("used_memory_bytes") or 0), reverse=True)
        return out[:KEEP]

    def _user(self, uid: int) -> str:
        """A uid by name (as text when unnamed)."""
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except (KeyError, OSError):
                name = str(uid)
            if len(self._users) < 1024:
                self._users[uid] = name
        return name

    def for_run(self, pid: int, top: int, *, uid: int) -> dict[str, Any] | None:
        """The latest scan without the run's own process, its top `top` entries, as a run of
        `uid` may see them."""
        latest = self.latest
        if latest is None:
            return None
        out: dict[str, Any] = {}
        if "host_cpu_pct" in latest:
            out["host_cpu_pct"] = latest["host_cpu_pct"]
        out["cpu"] = [_seen_by(uid, e) for e in latest["cpu"] if e["pid"] != pid][:top]
        if "gpu" in latest:
            mine = [e for e in latest["gpu"] if e.get("pid") == pid]
            devices = {e.get("device") for e in mine}
            others = [_seen_by(uid, e) for e in latest["gpu"] if e.get("pid") != pid]
            others.sort(key=lambda e: e.get("device") not in devices)  # stable: busiest first within
            out["gpu"] = others[:top]
            # The devices the run itself is on, and its own share there: what gpu_contention
            # compares the others against.
            out["gpu_self"] = [
                {k: e[k] for k in ("device", "used_memory_bytes", "sm_util_pct", "mem_util_pct") if k in e}
                for e in mine
            ]
        return out


def _seen_by(uid: int, entry: dict[str, Any]) -> dict[str, Any]:
    """A scan's entry as a run of `uid` sees it: in full when the process is that user's
    (every process, for root), else without what names it (a GPU's pid stays: NVML gives
    it to anyone)."""
    shown = {k: v for k, v in entry.items() if k != "uid"}
    if uid != 0 and entry.get("uid") != uid:
        for key in ("name", "user") if "device" in entry else ("name", "pid"):
            shown.pop(key, None)
    return shown
