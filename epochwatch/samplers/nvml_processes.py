"""Per-process GPU utilisation from NVML, for samplers/nvml.py (which owns the pynvml module).

Kept apart from nvml.py only for size; it never imports pynvml itself: it calls the
functions of the module the NVML session loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ProcessUtilization:
    """Per-process SM and memory utilisation, each call covering the time since the last.

    NVML keeps a short buffer of per-process samples and returns those newer than the
    timestamp it is given; we keep the newest timestamp seen per device, so each call
    averages the process's samples since the previous call (nvitop does the same).
    `nvmlDeviceGetProcessesUtilizationInfo` (drivers from 550) is tried first, then
    `nvmlDeviceGetProcessUtilization`; one that is missing or unsupported is not tried
    again. NVML answers NotFound when no process had a sample since the timestamp:
    that is an answer (nobody was busy), not a failure.
    """

    _FUNCTIONS = ("nvmlDeviceGetProcessesUtilizationInfo", "nvmlDeviceGetProcessUtilization")
    _NOT_FOUND = 6  # NVML_ERROR_NOT_FOUND
    _SUCCESS = 0  # pynvml raises NVMLError(SUCCESS) when the size probe finds nothing

    def __init__(self) -> None:
        self._seen: dict[int, int] = {}  # device index -> newest sample timestamp (microseconds)
        self._broken: set[str] = set()

    def read(self, lib: Any, handle: Any, device: int) -> dict[int, tuple[float, float]] | None:
        """{pid: (sm %, memory %)} since the previous call; None when NVML cannot say."""
        for function in self._FUNCTIONS:
            if function in self._broken:
                continue
            fn = getattr(lib.module, function, None)
            if fn is None:
                self._broken.add(function)
                continue
            try:
                samples = fn(handle, self._seen.get(device, 0))
            except Exception as exc:
                if getattr(exc, "value", None) in (self._NOT_FOUND, self._SUCCESS):
                    return {}
                self._broken.add(function)
                continue
            return self._average(samples, device)
        return None

    def _average(self, samples: Iterable[Any], device: int) -> dict[int, tuple[float, float]]:
        sums: dict[int, list[float]] = {}
        newest = self._seen.get(device, 0)
        for sample in samples or ():
            pid, stamp = getattr(sample, "pid", None), getattr(sample, "timeStamp", None)
            sm, mem = getattr(sample, "smUtil", None), getattr(sample, "memUtil", None)
            if not isinstance(pid, int) or not isinstance(sm, int) or not isinstance(mem, int):
                continue
            if sm > 100 or mem > 100:
                continue  # NVML marks "no value" with an out-of-range number on some drivers
            if isinstance(stamp, int) and stamp > newest:
                newest = stamp
            acc = sums.setdefault(pid, [0.0, 0.0, 0.0])
            acc[0] += sm
            acc[1] += mem
            acc[2] += 1
        self._seen[device] = newest
        return {pid: (round(a[0] / a[2], 1), round(a[1] / a[2], 1)) for pid, a in sums.items()}


def comm(pid: int) -> str | None:
    """A process's name from /proc (None where there is no /proc, or the pid is not ours to see)."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read(64).decode("utf-8", "replace").strip() or None
    except OSError:
        return None
