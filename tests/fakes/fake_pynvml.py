"""A module shaped like `pynvml`, for machines without a GPU (the one fake the suite allows).

One device, "NVIDIA Fake A100", 40 GiB, on which the *current process* holds 1 GiB plus
64 MiB per call of nvmlDeviceGetMemoryInfo (so growth is visible), 50% utilisation, and
the sw_power_cap throttle reason set.

FAKE_NVML_HANG_SECONDS=<s> in the environment makes every utilisation query sleep that
long, as a wedged driver does (read at each call, so a test can turn it on and off).
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

NVML_TEMPERATURE_GPU = 0
nvmlClocksEventReasonGpuIdle = 0x1
nvmlClocksEventReasonApplicationsClocksSetting = 0x2
nvmlClocksEventReasonSwPowerCap = 0x4
nvmlClocksEventReasonHwSlowdown = 0x8
nvmlClocksEventReasonSyncBoost = 0x10
nvmlClocksEventReasonSwThermalSlowdown = 0x20
nvmlClocksEventReasonHwThermalSlowdown = 0x40
nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x80
nvmlClocksEventReasonDisplayClockSetting = 0x100
nvmlClocksThrottleReasonGpuIdle = nvmlClocksEventReasonGpuIdle
nvmlClocksThrottleReasonApplicationsClocksSetting = nvmlClocksEventReasonApplicationsClocksSetting
nvmlClocksThrottleReasonSwPowerCap = nvmlClocksEventReasonSwPowerCap
nvmlClocksThrottleReasonHwSlowdown = nvmlClocksEventReasonHwSlowdown
nvmlClocksThrottleReasonSyncBoost = nvmlClocksEventReasonSyncBoost
nvmlClocksThrottleReasonSwThermalSlowdown = nvmlClocksEventReasonSwThermalSlowdown
nvmlClocksThrottleReasonHwThermalSlowdown = nvmlClocksEventReasonHwThermalSlowdown
nvmlClocksThrottleReasonHwPowerBrakeSlowdown = nvmlClocksEventReasonHwPowerBrakeSlowdown
nvmlClocksThrottleReasonDisplayClockSetting = nvmlClocksEventReasonDisplayClockSetting

GIB = 1 << 30
_calls = {"memory": 0}


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


def nvmlInit() -> None:
    pass


def nvmlShutdown() -> None:
    pass


def nvmlSystemGetDriverVersion() -> str:
    return "550.54.15"


def nvmlDeviceGetCount() -> int:
    return 1


def nvmlDeviceGetHandleByIndex(index: int) -> object:
    return SimpleNamespace(index=index)


def nvmlDeviceGetName(handle: object) -> str:
    return "NVIDIA Fake A100"


def nvmlDeviceGetUUID(handle: object) -> str:
    return "GPU-00000000-fake-0000-0000-000000000000"


def _process_bytes() -> int:
    return GIB + _calls["memory"] * 64 * (1 << 20)


def nvmlDeviceGetMemoryInfo(handle: object) -> SimpleNamespace:
    _calls["memory"] += 1
    used = 2 * GIB + _process_bytes()
    return SimpleNamespace(total=40 * GIB, used=used, free=40 * GIB - used)


def nvmlDeviceGetComputeRunningProcesses(handle: object) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(pid=os.getpid(), usedGpuMemory=_process_bytes()),
        SimpleNamespace(pid=1, usedGpuMemory=2 * GIB),
    ]


def nvmlDeviceGetGraphicsRunningProcesses(handle: object) -> list[SimpleNamespace]:
    return []


def nvmlDeviceGetUtilizationRates(handle: object) -> SimpleNamespace:
    hang = float(os.environ.get("FAKE_NVML_HANG_SECONDS") or 0)
    if hang > 0:
        time.sleep(hang)
    return SimpleNamespace(gpu=50, memory=20)


def nvmlDeviceGetTemperature(handle: object, sensor: int) -> int:
    return 61


def nvmlDeviceGetPowerUsage(handle: object) -> int:
    return 250_000


def nvmlDeviceGetCurrentClocksEventReasons(handle: object) -> int:
    return nvmlClocksEventReasonSwPowerCap | nvmlClocksEventReasonGpuIdle


nvmlDeviceGetCurrentClocksThrottleReasons = nvmlDeviceGetCurrentClocksEventReasons
