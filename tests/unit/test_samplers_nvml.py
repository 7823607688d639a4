"""NvmlSampler against a fake module shaped like pynvml (names and constant values as
in nvidia-ml-py), plus the real pynvml on whatever this machine has."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from epochwatch.samplers.base import Sampler
from epochwatch.samplers.nvml import NvmlSampler

PACKAGE = Path(__file__).resolve().parents[2] / "epochwatch"

# The real pynvml values (checked against the installed pynvml below).
REASONS = {
    "GpuIdle": 0x1,
    "ApplicationsClocksSetting": 0x2,
    "SwPowerCap": 0x4,
    "HwSlowdown": 0x8,
    "SyncBoost": 0x10,
    "SwThermalSlowdown": 0x20,
    "HwThermalSlowdown": 0x40,
    "HwPowerBrakeSlowdown": 0x80,
    "DisplayClockSetting": 0x100,
}
ERRORS = {
    "NotSupported": 3,
    "NotFound": 6,
    "NoPermission": 4,
    "DriverNotLoaded": 9,
    "LibraryNotFound": 12,
    "FunctionNotFound": 13,
}


@dataclass
class Gpu:
    name: str | bytes = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    total: int = 80 << 30
    used: int = 10 << 30
    compute: list[tuple[int, int | None]] = field(default_factory=list)
    graphics: list[tuple[int, int | None]] = field(default_factory=list)
    util: tuple[int, int] = (87, 41)
    temperature: int = 64
    power_mw: int = 312_345
    reasons: int = 0
    unsupported: set[str] = field(default_factory=set)
    # per-process utilisation samples: (pid, timestamp in microseconds, sm %, memory %)
    proc_util: list[tuple[int, int, int, int]] = field(default_factory=list)


def fake_nvml(gpus: list[Gpu], *, init_error: str | None = None, driver: Any = b"550.54.15") -> Any:
    """A module with pynvml's names; records calls in `calls`."""
    mod: Any = types.ModuleType("fake_pynvml")
    mod.calls = []

    class NVMLError(Exception):
        def __init__(self, value: int) -> None:
            super().__init__(value)
            self.value = value

    mod.NVMLError = NVMLError
    errors = {}
    for name, code in ERRORS.items():
        cls = type(
            f"NVMLError_{name}", (NVMLError,), {"__init__": lambda self, c=code: NVMLError.__init__(self, c)}
        )
        setattr(mod, cls.__name__, cls)
        errors[name] = cls
    for suffix, value in REASONS.items():
        setattr(mod, f"nvmlClocksEventReason{suffix}", value)
        setattr(mod, f"nvmlClocksThrottleReason{suffix}", value)
    mod.NVML_TEMPERATURE_GPU = 0

    def call(name: str, handle: int) -> Gpu:
        mod.calls.append(name)
        if name in gpus[handle].unsupported:
            raise errors["NotSupported"]()
        return gpus[handle]

    def init() -> None:
        mod.calls.append("nvmlInit")
        if init_error:
            raise errors[init_error]()

    mod.nvmlInit = init
    mod.nvmlShutdown = lambda: mod.calls.append("nvmlShutdown")
    mod.nvmlDeviceGetCount = lambda: len(gpus)
    mod.nvmlDeviceGetHandleByIndex = lambda i: i
    mod.nvmlSystemGetDriverVersion = lambda: driver
    mod.nvmlDeviceGetName = lambda h: call("nvmlDeviceGetName", h).name
    mod.nvmlDeviceGetUUID = lambda h: call("nvmlDeviceGetUUID", h).uuid

    def memory(h: int) -> Any:
        g = call("nvmlDeviceGetMemoryInfo", h)
        return types.SimpleNamespace(total=g.total, used=g.used, free=g.total - g.used)

    def procs(kind: str) -> Any:
        def get(h: int) -> list[Any]:
            g = call(f"nvmlDeviceGet{kind}RunningProcesses", h)
            entries = g.compute if kind == "Compute" else g.graphics
            return [types.SimpleNamespace(pid=p, usedGpuMemory=m) for p, m in entries]

        return get

    mod.nvmlDeviceGetMemoryInfo = memory
    mod.nvmlDeviceGetComputeRunningProcesses = procs("Compute")
    mod.nvmlDeviceGetGraphicsRunningProcesses = procs("Graphics")

    def util(h: int) -> Any:
        g = call("nvmlDeviceGetUtilizationRates", h)
        return types.SimpleNamespace(gpu=g.util[0], memory=g.util[1])

    def temperature(h: int, sensor: int) -> int:
        assert sensor == mod.NVML_TEMPERATURE_GPU
        return call("nvmlDeviceGetTemperature", h).temperature

    def process_util(name: str) -> Any:
        def get(h: int, last_seen: int) -> list[Any]:
            mod.calls.append((name, last_seen))
            g = call(name, h)
            samples = [
                types.SimpleNamespace(pid=p, timeStamp=ts, smUtil=sm, memUtil=mem, encUtil=0, decUtil=0)
                for p, ts, sm, mem in g.proc_util
                if ts > last_seen
            ]
            if not samples:
                raise errors["NotFound"]()  # what NVML answers when nothing is newer than last_seen
            return samples

        return get

    mod.nvmlDeviceGetProcessUtilization = process_util("nvmlDeviceGetProcessUtilization")
    mod.nvmlDeviceGetUtilizationRates = util
    mod.nvmlDeviceGetTemperature = temperature
    mod.nvmlDeviceGetPowerUsage = lambda h: call("nvmlDeviceGetPowerUsage", h).power_mw
    mod.nvmlDeviceGetCurrentClocksEventReasons = lambda h: (
        call("nvmlDeviceGetCurrentClocksEventReasons", h).reasons
    )
    mod.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: (
        call("nvmlDeviceGetCurrentClocksThrottleReasons", h).reasons
    )
    return mod


ME = os.getpid()
OTHER = os.getppid()  # a pid that exists in our namespace
INVISIBLE = 999_999_999  # above any pid_max: a pid from another namespace


def two_gpus() -> list[Gpu]:
    return [
        Gpu(
            name=b"NVIDIA A100-SXM4-40GB",
            uuid="GPU-aaaa",
            total=40 << 30,
            used=3 << 30,
            compute=[(OTHER, 3 << 30)],
            reasons=REASONS["GpuIdle"],
        ),
        Gpu(
            name="NVIDIA A100-SXM4-40GB",
            uuid="GPU-bbbb",
            total=40 << 30,
            used=12 << 30,
            compute=[(ME, 11 << 30), (OTHER, 1 << 30)],
            reasons=REASONS["SwPowerCap"] | REASONS["HwSlowdown"] | REASONS["ApplicationsClocksSetting"],
        ),
    ]


def test_fake_matches_real_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    for suffix, value in REASONS.items():
        assert getattr(pynvml, f"nvmlClocksEventReason{suffix}") == value
        assert getattr(pynvml, f"nvmlClocksThrottleReason{suffix}") == value
    for name, code in ERRORS.items():
        assert issubclass(getattr(pynvml, f"NVMLError_{name}"), pynvml.NVMLError)
        assert getattr(pynvml, f"NVMLError_{name}")().value == code
    assert pynvml.NVML_TEMPERATURE_GPU == 0
    for struct in (pynvml.c_nvmlProcessUtilizationSample_t, pynvml.c_nvmlProcessUtilizationInfo_v1_t):
        assert {"pid", "timeStamp", "smUtil", "memUtil"} <= {name for name, _ in struct._fields_}
    for function in ("nvmlDeviceGetProcessUtilization", "nvmlDeviceGetProcessesUtilizationInfo"):
        assert list(inspect.signature(getattr(pynvml, function)).parameters) == ["handle", "timeStamp"]


def test_is_a_sampler() -> None:
    sampler = NvmlSampler(nvml=fake_nvml(two_gpus()))
    assert isinstance(sampler, Sampler)
    assert sampler.name == "gpu"


def test_two_devices_pid_on_one(capsys: pytest.CaptureFixture[str]) -> None:
    sampler = NvmlSampler(nvml=fake_nvml(two_gpus()))
    block = sampler.sample()
    assert block is not None
    d0, d1 = block["devices"]
    assert d0 == {
        "index": 0,
        "name": "NVIDIA A100-SXM4-40GB",
        "uuid": "GPU-aaaa",
        "memory_used_bytes": 3 << 30,
        "memory_total_bytes": 40 << 30,
        "process_memory_bytes": 0,
        "utilization_pct": 87,
        "memory_utilization_pct": 41,
        "temperature_c": 64,
        "power_w": 312.3,
        "throttle_reasons": [],
    }
    assert d1["index"] == 1 and d1["name"] == "NVIDIA A100-SXM4-40GB"
    assert d1["process_memory_bytes"] == 11 << 30
    assert d1["throttle_reasons"] == ["sw_power_cap", "hw_slowdown"]
    assert capsys.readouterr().err == ""
    sampler.close()


def test_not_supported_fields_are_left_out() -> None:
    gpus = two_gpus()
    gpus[0].unsupported = {
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetCurrentClocksThrottleReasons",
        "nvmlDeviceGetComputeRunningProcesses",
        "nvmlDeviceGetGraphicsRunningProcesses",
    }
    block = NvmlSampler(nvml=fake_nvml(gpus)).sample()
    assert block is not None
    d0, d1 = block["devices"]
    for key in ("power_w", "temperature_c", "throttle_reasons", "process_memory_bytes"):
        assert key not in d0
        assert key in d1
    assert d0["memory_used_bytes"] == 3 << 30
    assert None not in d0.values()


def test_all_reason_names() -> None:
    gpus = [Gpu(reasons=sum(REASONS.values()) | 0x10000)]
    block = NvmlSampler(nvml=fake_nvml(gpus)).sample()
    assert block is not None
    assert block["devices"][0]["throttle_reasons"] == [
        "sw_power_cap",
        "hw_slowdown",
        "sync_boost",
        "sw_thermal_slowdown",
        "hw_thermal_slowdown",
        "hw_power_brake",
        "display_clock_setting",
        "unknown_0x10000",
    ]


def test_throttle_reasons_fall_back_to_the_old_name() -> None:
    nvml = fake_nvml([Gpu(reasons=REASONS["HwThermalSlowdown"])])
    del nvml.nvmlDeviceGetCurrentClocksEventReasons  # pynvml before 12.535
    block = NvmlSampler(nvml=nvml).sample()
    assert block is not None
    assert block["devices"][0]["throttle_reasons"] == ["hw_thermal_slowdown"]
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" in nvml.calls


def test_compute_and_graphics_context_is_not_counted_twice() -> None:
    gpus = [Gpu(compute=[(ME, 2 << 30)], graphics=[(ME, 2 << 30), (OTHER, 1 << 20)])]
    block = NvmlSampler(nvml=fake_nvml(gpus)).sample()
    assert block is not None
    assert block["devices"][0]["process_memory_bytes"] == 2 << 30


def test_pid_hidden_by_another_namespace_is_unknown_not_zero() -> None:
    gpus = [Gpu(compute=[(INVISIBLE, 5 << 30)])]
    block = NvmlSampler(nvml=fake_nvml(gpus)).sample()
    assert block is not None
    assert "process_memory_bytes" not in block["devices"][0]


def test_memory_not_measurable_is_left_out() -> None:
    gpus = [Gpu(compute=[(ME, None)])]  # pynvml maps NVML_VALUE_NOT_AVAILABLE to None
    block = NvmlSampler(nvml=fake_nvml(gpus)).sample()
    assert block is not None
    assert "process_memory_bytes" not in block["devices"][0]
    idle = {"sm_util_pct": 0.0, "mem_util_pct": 0.0}
    assert NvmlSampler(nvml=fake_nvml(gpus)).gpu_processes() == [{"pid": ME, "device": 0, **idle}]


def test_for_pid_shares_the_session() -> None:
    nvml = fake_nvml(two_gpus())
    sampler = NvmlSampler(ME, nvml=nvml)
    other = sampler.for_pid(OTHER)
    block = other.sample()
    assert block is not None
    assert [d["process_memory_bytes"] for d in block["devices"]] == [3 << 30, 1 << 30]
    assert sampler.sample() is not None
    assert nvml.calls.count("nvmlInit") == 1
    other.close()
    assert "nvmlShutdown" not in nvml.calls
    sampler.close()
    assert nvml.calls.count("nvmlShutdown") == 1


def test_inventory() -> None:
    sampler = NvmlSampler(nvml=fake_nvml(two_gpus()))
    assert sampler.inventory() == {
        "driver": "550.54.15",
        "gpus": [
            {"index": 0, "name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-aaaa", "memory_total_bytes": 40 << 30},
            {"index": 1, "name": "NVIDIA A100-SXM4-40GB", "uuid": "GPU-bbbb", "memory_total_bytes": 40 << 30},
        ],
    }


def test_gpu_processes() -> None:
    sampler = NvmlSampler(nvml=fake_nvml(two_gpus()))
    idle = {"sm_util_pct": 0.0, "mem_util_pct": 0.0}  # NVML had no utilisation samples: idle
    assert sorted(sampler.gpu_processes(), key=lambda p: (p["device"], p["pid"])) == sorted(
        [
            {"pid": OTHER, "device": 0, "used_memory_bytes": 3 << 30, **idle},
            {"pid": ME, "device": 1, "used_memory_bytes": 11 << 30, **idle},
            {"pid": OTHER, "device": 1, "used_memory_bytes": 1 << 30, **idle},
        ],
        key=lambda p: (p["device"], p["pid"]),
    )


def _by_pid(entries: list[dict[str, Any]], device: int) -> dict[int, dict[str, Any]]:
    return {e["pid"]: e for e in entries if e["device"] == device}


def test_gpu_processes_with_utilisation() -> None:
    gpus = two_gpus()
    gpus[1].proc_util = [(ME, 1_000, 80, 30), (OTHER, 1_000, 10, 5), (OTHER, 2_000, 30, 15)]
    nvml = fake_nvml(gpus)  # has only the older call (pynvml before 12.550)
    sampler = NvmlSampler(nvml=nvml)
    first = sampler.gpu_processes()
    d1 = _by_pid(first, 1)
    assert (d1[ME]["sm_util_pct"], d1[ME]["mem_util_pct"]) == (80.0, 30.0)
    assert (d1[OTHER]["sm_util_pct"], d1[OTHER]["mem_util_pct"]) == (20.0, 10.0)  # mean of its samples
    assert d1[OTHER]["used_memory_bytes"] == 1 << 30
    # device 0 answered NotFound (no samples at all): its one process was idle, not unknown
    assert _by_pid(first, 0)[OTHER]["sm_util_pct"] == 0.0
    # the next call asks only for samples newer than the newest seen, per device
    gpus[1].proc_util.append((OTHER, 3_000, 90, 40))
    second = _by_pid(sampler.gpu_processes(), 1)
    assert second[OTHER]["sm_util_pct"] == 90.0 and second[ME]["sm_util_pct"] == 0.0
    assert ("nvmlDeviceGetProcessUtilization", 2_000) in nvml.calls


def test_newer_utilisation_call_is_preferred() -> None:
    gpus = [Gpu(compute=[(OTHER, 1 << 30)])]
    nvml = fake_nvml(gpus)
    nvml.nvmlDeviceGetProcessesUtilizationInfo = lambda h, ts: [
        types.SimpleNamespace(pid=OTHER, timeStamp=5, smUtil=55, memUtil=11, encUtil=0, decUtil=0)
    ]
    (entry,) = NvmlSampler(nvml=nvml).gpu_processes()
    assert (entry["sm_util_pct"], entry["mem_util_pct"]) == (55.0, 11.0)
    assert not any(isinstance(c, tuple) for c in nvml.calls)  # the older call was never needed


def test_utilisation_not_supported_is_left_out() -> None:
    gpus = [Gpu(compute=[(ME, 1 << 30), (OTHER, 2 << 30)], proc_util=[(OTHER, 10, 50, 20)])]
    gpus[0].unsupported = {"nvmlDeviceGetProcessUtilization"}
    nvml = fake_nvml(gpus)
    sampler = NvmlSampler(nvml=nvml)
    for _ in range(2):
        entries = sampler.gpu_processes()
        assert [sorted(e) for e in entries] == [["device", "pid", "used_memory_bytes"]] * 2
    # unsupported once: not asked again (one failed call per scan would be waste)
    assert sum(1 for c in nvml.calls if isinstance(c, tuple)) == 1


def test_process_that_vanished_between_the_calls() -> None:
    """NVML lists processes and their utilisation in two calls; a process can exit between
    them. One that only the utilisation call mentions is gone and left out; one listed but
    without a sample was idle."""
    gone = INVISIBLE
    gpus = [Gpu(compute=[(OTHER, 2 << 30)], proc_util=[(gone, 10, 70, 30), (ME, 10, 40, 10)])]
    entries = NvmlSampler(nvml=fake_nvml(gpus)).gpu_processes()
    assert entries == [
        {"pid": OTHER, "device": 0, "used_memory_bytes": 2 << 30, "sm_util_pct": 0.0, "mem_util_pct": 0.0}
    ]


def test_utilisation_out_of_range_is_ignored() -> None:
    gpus = [Gpu(compute=[(OTHER, 1 << 30)], proc_util=[(OTHER, 10, 0xFFFFFFFF, 3)])]
    (entry,) = NvmlSampler(nvml=fake_nvml(gpus)).gpu_processes()
    assert entry["sm_util_pct"] == 0.0


def test_close_shuts_down_once_and_stops_sampling() -> None:
    nvml = fake_nvml(two_gpus())
    sampler = NvmlSampler(nvml=nvml)
    sampler.sample()
    sampler.close()
    sampler.close()
    assert nvml.calls.count("nvmlShutdown") == 1
    assert sampler.sample() is None


def test_close_before_use_never_initialises() -> None:
    nvml = fake_nvml(two_gpus())
    sampler = NvmlSampler(nvml=nvml)
    sampler.close()
    assert sampler.sample() is None
    assert nvml.calls == []


def _assert_unavailable_once(sampler: NvmlSampler, capsys: pytest.CaptureFixture[str], words: str) -> None:
    assert sampler.sample() is None
    assert sampler.sample() is None
    assert sampler.inventory() is None
    assert sampler.gpu_processes() == []
    sampler.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("epochwatch: GPU metrics unavailable: ")
    assert re.search(words, lines[0]), lines[0]


@pytest.mark.parametrize(
    "error, words",
    [
        ("LibraryNotFound", "libnvidia-ml"),
        ("DriverNotLoaded", "driver is not loaded"),
        ("NoPermission", "permission"),
    ],
)
def test_init_failure(capsys: pytest.CaptureFixture[str], error: str, words: str) -> None:
    nvml = fake_nvml(two_gpus(), init_error=error)
    _assert_unavailable_once(NvmlSampler(nvml=nvml), capsys, words)
    assert "nvmlShutdown" not in nvml.calls  # never initialised, nothing to shut down


def test_pynvml_not_importable(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    _assert_unavailable_once(NvmlSampler(), capsys, "pynvml")


def test_no_devices(capsys: pytest.CaptureFixture[str]) -> None:
    nvml = fake_nvml([])
    _assert_unavailable_once(NvmlSampler(nvml=nvml), capsys, "no NVIDIA GPU")
    assert nvml.calls.count("nvmlShutdown") == 1  # the init is balanced


def test_count_failing(capsys: pytest.CaptureFixture[str]) -> None:
    nvml = fake_nvml(two_gpus())

    def broken() -> int:
        raise nvml.NVMLError_NotSupported()

    nvml.nvmlDeviceGetCount = broken
    _assert_unavailable_once(NvmlSampler(nvml=nvml), capsys, "count")


def test_real_pynvml_never_raises(capsys: pytest.CaptureFixture[str]) -> None:
    """On a machine without a GPU: None and one line. With one: a well-formed block."""
    sampler = NvmlSampler()
    try:
        block = sampler.sample()
        inventory = sampler.inventory()
        processes = sampler.gpu_processes()
    finally:
        sampler.close()
    err = capsys.readouterr().err
    if block is None:
        assert inventory is None and processes == []
        assert err.count("GPU metrics unavailable") == 1
        return
    assert err == ""
    assert inventory is not None and inventory["gpus"]
    for device in block["devices"]:
        assert {"index", "name", "uuid", "memory_used_bytes", "memory_total_bytes"} <= device.keys()
        assert None not in device.values()
        assert isinstance(device.get("throttle_reasons", []), list)


def test_only_nvml_module_imports_pynvml() -> None:
    pattern = re.compile(r"^\s*(import\s+pynvml|from\s+pynvml\s+import)|import_module\(\s*['\"]pynvml", re.M)
    importers = sorted(
        str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if pattern.search(path.read_text())
    )
    assert importers == ["samplers/nvml.py"]


def test_importing_the_sampler_does_not_load_pynvml() -> None:
    code = "import sys, epochwatch.samplers.nvml; assert 'pynvml' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
