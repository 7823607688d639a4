"""The per-epoch series the exporters chart: one `epoch` record -> {name: number}.

One list, so MLflow, W&B and TensorBoard show the same numbers under the same names
(`epochwatch/<name>`), each name with its unit: the process's RSS and its GPU memory (MiB),
the epoch's and the median step's time, the time spent waiting for input (s), the new
tf.function traces, and the hook's own overhead (s). A field the record lacks (no GPU,
no step timing) is left out, never sent as 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from epochwatch.analysis.series import finite_number as _num

MIB = 1024 * 1024
PREFIX = "epochwatch/"


def _block(rec: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    block = rec.get(name)
    return block if isinstance(block, Mapping) else {}


def _gpu_bytes(rec: Mapping[str, Any]) -> float | None:
    """This process's memory on every device it uses (the device's used memory where NVML
    gives no per-process figure)."""
    devices = _block(rec, "gpu").get("devices")
    known = []
    for dev in devices if isinstance(devices, list) else []:
        if isinstance(dev, Mapping):
            own = _num(dev.get("process_memory_bytes"))
            value = own if own is not None else _num(dev.get("memory_used_bytes"))
            if value is not None:
                known.append(value)
    return sum(known) if known else None


def epoch_series(rec: Mapping[str, Any]) -> dict[str, float]:
    """The series' values at this epoch, by name (without PREFIX)."""
    rss = _num(_block(rec, "host").get("rss_bytes"))
    gpu = _gpu_bytes(rec)
    values = {
        "host_rss_mib": rss / MIB if rss is not None else None,
        "gpu_memory_mib": gpu / MIB if gpu is not None else None,
        "epoch_seconds": _num(rec.get("seconds")),
        "step_seconds": _num(_block(rec, "step_seconds").get("median")),
        "input_wait_seconds": _num(rec.get("input_wait_seconds")),
        "retraces": _num(_block(rec, "retraces").get("new")),
        "overhead_seconds": _num(rec.get("overhead_seconds")),
    }
    return {name: round(v, 6) for name, v in values.items() if v is not None}
