"""gpu_memory_pressure: a GPU's memory is nearly full, per device.

TensorFlow reserves almost all of a GPU's memory up front, so NVML's "used" near the
total is normal and says nothing. What counts: TF's allocator peak (`tf_memory[GPU:i]
.peak_bytes`) against the device total, where the trace has it; without it, "used" near
the total only when other processes hold a real share of it (they compete with us).
Holds when the share is at least WARN_SHARE in each of the last RECENT epochs.
"""

from __future__ import annotations

from typing import Any

from epochwatch.analysis import frameworks
from epochwatch.analysis.detectors.base import Detector, each_key
from epochwatch.analysis.findings import CRITICAL, WARNING, Finding
from epochwatch.analysis.units import fmt_bytes, fmt_pct
from epochwatch.analysis.view import RunAtEpoch, window_epochs

KIND = "gpu_memory_pressure"
RECENT = 3
WARN_SHARE = 0.92
CRITICAL_SHARE = 0.98
OTHERS_SHARE = 0.10
PERSISTENCE = 1  # RECENT epochs in a row already
HINT = (
    "the model is about to run out of GPU memory: lower the batch size, use mixed precision "
    "(keras.mixed_precision.set_global_policy('mixed_float16')), free tensors kept between steps, "
    "or move other processes off this GPU; tf.config.experimental.set_memory_growth lets several "
    "jobs share a device"
)


def _device(view: RunAtEpoch, key: str) -> Finding | None:
    idx = list(view.series.indexes(view.end, RECENT, warm=True))
    if len(idx) < RECENT:
        return None
    target = f"GPU:{key}"
    shares: list[float] = []
    source = ""
    others = 0.0
    for i in idx:
        total = view.value("gpu_total", i, key)
        if not (total == total and total > 0):
            return None
        peak = view.value("tf_peak", i, target)
        if peak == peak:
            shares.append(peak / total)
            source = f"{view.series.allocator_sources.get(target, 'TF allocator')} peak"
            continue
        used, own = view.value("gpu_used", i, key), view.value("gpu_proc", i, key)
        if not (used == used and own == own):
            return None
        others = max(0.0, used - own)
        if others / total < OTHERS_SHARE:
            return None
        shares.append(used / total)
        source = "NVML memory used, other processes included"
    share = min(shares)
    if share < WARN_SHARE:
        return None
    total = view.latest("gpu_total", key=key)
    evidence: dict[str, Any] = {
        "share": share,
        "memory_total_bytes": total,
        "source": source,
        "epochs": window_epochs(view, idx),
    }
    if others:
        evidence["other_processes_bytes"] = others
    name = view.series.gpu_names.get(key)
    title = (
        f"{target}{' (' + name + ')' if name else ''} memory is {fmt_pct(share)} full ({fmt_bytes(total)})"
    )
    if others:
        title += f"; other processes hold {fmt_bytes(others)}"
    severity = CRITICAL if share >= CRITICAL_SHARE else WARNING
    hint = frameworks.hint(KIND, frameworks.framework(view.start), HINT)
    return Finding(KIND, severity, title, evidence, hint, target, view.epoch_number(view.last))


def detect(view: RunAtEpoch) -> list[Finding]:
    return each_key(view, KIND, "gpu_total", lambda key: f"GPU:{key}", _device)


DETECTOR = Detector(name=KIND, detect=detect, persistence=PERSISTENCE)
