"""GPU memory, utilisation, temperature, power and throttling from NVML, and who uses each GPU.

The only module in epochwatch that imports pynvml (nvidia-ml-py), and only when a
sampler first needs it, so importing the hook or the CLI never loads it. Modelled on
nvitop's `libnvml`: NVML is initialised once, lazily, under a lock; every query goes
through `_Library.query`, which returns the `NA` sentinel instead of raising, so one
unsupported field (NotSupported on consumer cards, NoPermission in containers) only
leaves that field out. A machine without the package, the driver or a GPU gets one
line on stderr ("GPU metrics unavailable: ...") and `None` from then on; nothing raises.
"""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Callable, Iterable
from typing import Any

from epochwatch import notices
from epochwatch.samplers.nvml_processes import ProcessUtilization, comm


class _NotAvailable:
    """The sentinel a failed query returns (falsy, so `x or default` reads naturally)."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NA"


NA: Any = _NotAvailable()

# Reasons that only say this machine has no NVIDIA GPU: debug-level in a training process.
_NO_LIBRARY = "the NVML library (libnvidia-ml.so.1) is not installed; no NVIDIA driver here"
_NO_DRIVER = "the NVIDIA driver is not loaded"
_NO_GPU = "no NVIDIA GPU found"
_NO_GPU_HERE = frozenset({_NO_LIBRARY, _NO_DRIVER, _NO_GPU})

# Clock event ("throttle") reasons worth reporting: (pynvml constant suffix, our name,
# its value in nvml.h, used when an older pynvml lacks the constant).
_REASONS: tuple[tuple[str, str, int], ...] = (
    ("SwPowerCap", "sw_power_cap", 0x4),
    ("HwSlowdown", "hw_slowdown", 0x8),
    ("SyncBoost", "sync_boost", 0x10),
    ("SwThermalSlowdown", "sw_thermal_slowdown", 0x20),
    ("HwThermalSlowdown", "hw_thermal_slowdown", 0x40),
    ("HwPowerBrakeSlowdown", "hw_power_brake", 0x80),
    ("DisplayClockSetting", "display_clock_setting", 0x100),
    ("BoardLimit", "board_limit", 0x200),
    ("Reliability", "reliability", 0x400),
)
# Not throttling in any sense a user can act on: an idle GPU clocks down, and
# application clocks are a setting, not a slowdown.
_IGNORED_REASONS: tuple[tuple[str, int], ...] = (
    ("GpuIdle", 0x1),
    ("ApplicationsClocksSetting", 0x2),
)
_REASON_FUNCTIONS = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")


def _import_pynvml() -> types.ModuleType:
    import pynvml  # the project's one import of pynvml

    return pynvml


def _reason_constant(module: types.ModuleType, suffix: str, default: int) -> int:
    for prefix in ("nvmlClocksEventReason", "nvmlClocksThrottleReason"):
        value = getattr(module, prefix + suffix, None)
        if isinstance(value, int):
            return value
    return default


def _text(value: Any) -> str:
    """NVML strings come back as bytes from older pynvml, str from newer."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:
        text = ""
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name


def _pid_visible(pid: int) -> bool:
    """Whether a pid NVML reports exists in our pid namespace.

    NVML reports host pids; inside a container our own pid differs from the one NVML
    lists, so "our pid is not in the list" only means "zero" when every listed pid is
    one we can see.
    """
    return not sys.platform.startswith("linux") or os.path.exists(f"/proc/{pid}")


class _Library:
    """One NVML session: the module, whether nvmlInit succeeded, the device handles.

    Shared by an NvmlSampler and the samplers it makes with `for_pid`, so the daemon
    initialises NVML and says "unavailable" once however many runs it samples.
    """

    def __init__(self, module: types.ModuleType | None) -> None:
        self._given = module
        self.module: types.ModuleType | None = None
        self._lock = threading.Lock()
        self._state = "new"  # new -> ready | unavailable; ready -> closed
        # (handle, {index, name, uuid, memory_total_bytes}) per device; replaced, never
        # mutated, so a reader on another thread iterates a consistent list.
        self.devices: list[tuple[Any, dict[str, Any]]] = []
        self.reason_bits: list[tuple[int, str]] = []
        self.known_mask = 0  # the reasons reported and the ignored ones

    def ready(self) -> bool:
        """Initialise NVML on first use; False when it is unavailable or closed."""
        if self._state == "ready":
            return True
        if self._state != "new":
            return False
        with self._lock:
            if self._state == "new":
                reason = self._start()
                if reason is not None:
                    self._state = "unavailable"
                    if reason in _NO_GPU_HERE:  # how this machine is, every run: not news
                        notices.host_fact(f"GPU metrics unavailable: {reason}")
                    else:
                        notices.once_per_host(f"nvml:{reason}", f"GPU metrics unavailable: {reason}")
                else:
                    self._state = "ready"
        return self._state == "ready"

    def _start(self) -> str | None:
        """nvmlInit and the device list; the reason it failed, or None."""
        try:
            module = self._given if self._given is not None else _import_pynvml()
        except Exception as exc:
            return f"the nvidia-ml-py package (module pynvml) cannot be imported ({_describe(exc)})"
        self.module = module
        try:
            module.nvmlInit()
        except Exception as exc:
            return self._init_failure(module, exc)
        count = self.query("nvmlDeviceGetCount")
        if not isinstance(count, int) or count <= 0:
            self._shutdown()
            return _NO_GPU if count == 0 else "NVML cannot count the GPUs"
        devices = []
        for index in range(count):
            handle = self.query("nvmlDeviceGetHandleByIndex", index)
            if handle is NA:
                continue
            info: dict[str, Any] = {"index": index}
            for key, function in (("name", "nvmlDeviceGetName"), ("uuid", "nvmlDeviceGetUUID")):
                text = self.query(function, handle)
                if text is not NA:
                    info[key] = _text(text)
            memory = self.query("nvmlDeviceGetMemoryInfo", handle)
            if memory is not NA:
                info["memory_total_bytes"] = int(memory.total)
            devices.append((handle, info))
        if not devices:
            self._shutdown()
            return f"NVML lists {count} GPUs but opens none of them"
        self.devices = devices
        self.reason_bits = [(_reason_constant(module, s, v), n) for s, n, v in _REASONS]
        for bit, _ in self.reason_bits + [(_reason_constant(module, *r), "") for r in _IGNORED_REASONS]:
            self.known_mask |= bit
        return None

    @staticmethod
    def _init_failure(module: types.ModuleType, exc: Exception) -> str:
        def is_a(class_name: str) -> bool:
            cls = getattr(module, class_name, None)
            return isinstance(cls, type) and isinstance(exc, cls)

        if is_a("NVMLError_LibraryNotFound"):
            return _NO_LIBRARY
        if is_a("NVMLError_DriverNotLoaded"):
            return _NO_DRIVER
        if is_a("NVMLError_NoPermission"):
            return "no permission to use NVML"
        return f"nvmlInit failed ({_describe(exc)})"

    def query(self, function: str, *args: Any) -> Any:
        """module.<function>(*args), or NA when it is missing or raises anything."""
        fn: Callable[..., Any] | None = getattr(self.module, function, None)
        if fn is None:
            return NA
        try:
            return fn(*args)
        except Exception:
            return NA

    def close(self) -> None:
        with self._lock:
            if self._state == "ready":
                self._shutdown()
            if self._state != "unavailable":
                self._state = "closed"

    def _shutdown(self) -> None:
        self.query("nvmlShutdown")
        self.devices = []


class NvmlSampler:
    """The `gpu` block: every device NVML sees, and `pid`'s own memory on each.

    `nvml` is a module shaped like pynvml (tests pass a fake); by default pynvml is
    imported on first use. `sample()`, `inventory()` and `gpu_processes()` never raise;
    they return None (or []) when NVML is unavailable, which is said once on stderr.
    """

    name = "gpu"

    def __init__(self, pid: int | None = None, *, nvml: types.ModuleType | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self._lib = _Library(nvml)
        self._owner = True
        self._util = ProcessUtilization()

    def for_pid(self, pid: int) -> NvmlSampler:
        """A sampler for another process sharing this one's NVML session (and its one
        "unavailable" message); closing it does not shut NVML down, closing this does."""
        other = NvmlSampler(pid)
        other._lib, other._owner = self._lib, False
        return other

    @property
    def unavailable(self) -> bool:
        """True once NVML failed to start (no driver, no GPU): no reading will ever come."""
        return self._lib._state in ("unavailable", "closed")

    def sample(self) -> dict[str, Any] | None:
        """`{"devices": [...]}` per docs/trace-format.md; None when NVML is unavailable."""
        lib = self._lib
        if not lib.ready():
            return None
        devices = []
        for handle, static in lib.devices:
            device = dict(static)
            memory = lib.query("nvmlDeviceGetMemoryInfo", handle)
            if memory is not NA:
                device["memory_used_bytes"] = int(memory.used)
                device["memory_total_bytes"] = int(memory.total)
            lists = self._process_lists(handle)
            mine = self._process_memory(lists)
            if mine is not None:
                device["process_memory_bytes"] = mine
            if mine:  # we are on this device and know our pid there: who else computes on it
                device.update(self._shares(lists, handle, static["index"]))
            rates = lib.query("nvmlDeviceGetUtilizationRates", handle)
            if rates is not NA:
                device["utilization_pct"] = rates.gpu
                device["memory_utilization_pct"] = rates.memory
            sensor = getattr(lib.module, "NVML_TEMPERATURE_GPU", 0)
            temperature = lib.query("nvmlDeviceGetTemperature", handle, sensor)
            if temperature is not NA:
                device["temperature_c"] = temperature
            milliwatts = lib.query("nvmlDeviceGetPowerUsage", handle)
            if milliwatts is not NA:
                device["power_w"] = round(milliwatts / 1000.0, 1)
            reasons = self._throttle_reasons(handle)
            if reasons is not None:
                device["throttle_reasons"] = reasons
            devices.append(device)
        return {"devices": devices}

    def inventory(self) -> dict[str, Any] | None:
        """`{"driver", "gpus": [{index, name, uuid, memory_total_bytes}]}` for the run's
        environment fingerprint; None when NVML is unavailable."""
        lib = self._lib
        if not lib.ready():
            return None
        out: dict[str, Any] = {}
        driver = lib.query("nvmlSystemGetDriverVersion")
        if driver is not NA:
            out["driver"] = _text(driver)
        out["gpus"] = [dict(info) for _, info in lib.devices]
        return out

    def gpu_processes(self) -> list[dict[str, Any]]:
        """Every process on every device: `{pid, device, used_memory_bytes, sm_util_pct,
        mem_util_pct}`, for the daemon to see who else contends for the GPUs. Pids are as
        NVML reports them (the host's pid namespace). `used_memory_bytes` is absent where
        NVML cannot say (Windows WDDM, some containers); the two utilisations (each
        process's share of the SM and memory-controller time since the previous call) are
        absent where the device or driver cannot give them (NotSupported, older drivers).
        A process NVML lists is 0% busy when the utilisation call answered without it; a
        pid that only the utilisation call still mentions has gone and is left out."""
        lib = self._lib
        if not lib.ready():
            return []
        out: list[dict[str, Any]] = []
        for handle, static in lib.devices:
            lists = self._process_lists(handle)
            pids: dict[int, int | None] = {}
            for procs in lists:
                for pid, used in _memory_by_pid(procs).items():
                    pids[pid] = _larger(pids[pid], used) if pid in pids else used
            util = self._util.read(lib, handle, static["index"]) if pids else None
            for pid, used in sorted(pids.items()):
                entry: dict[str, Any] = {"pid": pid, "device": static["index"]}
                if used is not None:
                    entry["used_memory_bytes"] = used
                if util is not None:
                    sm, mem = util.get(pid, (0.0, 0.0))
                    entry["sm_util_pct"] = sm
                    entry["mem_util_pct"] = mem
                out.append(entry)
        return out

    def close(self) -> None:
        """nvmlShutdown, if this sampler initialised NVML (for_pid samplers do not)."""
        if self._owner:
            self._lib.close()

    def _process_lists(self, handle: Any) -> list[Iterable[Any]]:
        lists = []
        for function in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            procs = self._lib.query(function, handle)
            if procs is not NA and procs is not None:
                lists.append(procs)
        return lists

    def _shares(self, lists: list[Iterable[Any]], handle: Any, index: int) -> dict[str, Any]:
        """`process_sm_pct`, `others_sm_pct` and the busiest `others` on a device since the
        previous sample (NVML per-process utilisation), so gpu_contention works without the
        daemon; empty where NVML cannot say. Only pids in the process lists count: one that
        only the utilisation call mentions has exited."""
        util = self._util.read(self._lib, handle, index)
        if util is None:
            return {}
        listed: dict[int, int | None] = {}
        for procs in lists:
            listed.update(_memory_by_pid(procs))
        out: dict[str, Any] = {"process_sm_pct": util.get(self.pid, (0.0, 0.0))[0]}
        others = sorted(
            ((util.get(pid, (0.0, 0.0))[0], pid) for pid in listed if pid != self.pid), reverse=True
        )
        out["others_sm_pct"] = round(sum(sm for sm, _ in others), 1)
        busy = []
        for sm, pid in others[:3]:
            if sm <= 0:
                break
            entry: dict[str, Any] = {"pid": pid, "sm_util_pct": sm}
            if listed.get(pid) is not None:
                entry["used_memory_bytes"] = listed[pid]
            name = comm(pid)
            if name:
                entry["name"] = name
            busy.append(entry)
        if busy:
            out["others"] = busy
        return out

    def _process_memory(self, lists: list[Iterable[Any]]) -> int | None:
        """This pid's memory on the device; 0 when NVML answered and the pid is not there.

        A process with both a compute and a graphics context appears in both lists with
        the same figure, so the lists are combined with max, not summed (within one list,
        several entries for the pid are summed). None (field left out) when neither list
        could be read, when NVML cannot measure it, or when the pid is absent but the
        lists hold pids we cannot see (we are in another pid namespace).
        """
        if not lists:
            return None
        found = False
        best: int | None = None
        others: list[int] = []
        for procs in lists:
            by_pid = _memory_by_pid(procs)
            if self.pid in by_pid:
                found = True
                best = _larger(best, by_pid[self.pid])
            others.extend(p for p in by_pid if p != self.pid)
        if found:
            return best
        return 0 if all(_pid_visible(pid) for pid in others) else None

    def _throttle_reasons(self, handle: Any) -> list[str] | None:
        lib = self._lib
        for function in _REASON_FUNCTIONS:
            mask = lib.query(function, handle)
            if isinstance(mask, int):
                break
        else:
            return None
        reasons = [name for bit, name in lib.reason_bits if mask & bit]
        unknown = mask & ~lib.known_mask
        if unknown:
            reasons.append(f"unknown_{unknown:#x}")
        return reasons


def _memory_by_pid(procs: Iterable[Any]) -> dict[int, int | None]:
    """{pid: summed usedGpuMemory} for one process list; None where NVML reports none."""
    out: dict[int, int | None] = {}
    for proc in procs:
        pid = getattr(proc, "pid", None)
        if not isinstance(pid, int):
            continue
        used = getattr(proc, "usedGpuMemory", None)
        used = int(used) if isinstance(used, int) else None
        before = out.get(pid)
        out[pid] = used if before is None else before if used is None else before + used
    return out


def _larger(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
