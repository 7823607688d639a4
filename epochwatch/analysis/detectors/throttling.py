"""gpu_throttling: a GPU clocks down for a real share of the epochs, per device.

Holds when `throttle_reasons` is non-empty in at least MIN_SHARE of the last WINDOW
epochs (and at least MIN_EPOCHS of them). The evidence says how much slower throttled
epochs were than the others; severity is warning when they were at least
SLOWER_RATIO slower or a hardware/thermal reason is among the reasons, info otherwise
(a power cap that costs no time).
"""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.detectors.base import Detector, each_key
from epochwatch.analysis.findings import INFO, WARNING, Finding
from epochwatch.analysis.trend import median
from epochwatch.analysis.view import RunAtEpoch, window_epochs

KIND = "gpu_throttling"
WINDOW = 50
MIN_SHARE = 0.2
MIN_EPOCHS = 3
SLOWER_RATIO = 1.05
SERIOUS = ("hw_slowdown", "hw_thermal_slowdown", "sw_thermal_slowdown", "hw_power_brake")
PERSISTENCE = 2
HINT = (
    "the GPU slows its clocks: thermal reasons mean cooling (airflow, fan curve, a hot rack), "
    "power reasons a power cap (nvidia-smi -q -d PERFORMANCE,POWER shows which; a cap set with "
    "nvidia-smi -pl can be raised); hw_power_brake points at the power supply"
)


def _device(view: RunAtEpoch, key: str) -> Finding | None:
    w = view.window("gpu_throttled", key, size=WINDOW)
    if len(w) < MIN_EPOCHS:
        return None
    throttled = [i for i, v in zip(w.indexes, w.values, strict=True) if v > 0]
    share = len(throttled) / len(w)
    if share < MIN_SHARE or len(throttled) < MIN_EPOCHS:
        return None
    fast = [view.value("seconds", i) for i, v in zip(w.indexes, w.values, strict=True) if v == 0]
    slow = [view.value("seconds", i) for i in throttled]
    fast = [v for v in fast if v == v]
    slow = [v for v in slow if v == v]
    ratio = median(slow) / median(fast) if fast and slow and median(fast) > 0 else None
    counter = view.series.gpu_reasons.get(key)
    reasons = dict(counter.most_common()) if counter else {}
    evidence: dict[str, Any] = {
        "throttled_share": share,
        "throttled_epochs": len(throttled),
        "epochs": window_epochs(view, w.indexes),
        "reasons": reasons,
    }
    if ratio is not None:
        evidence["epoch_time_ratio_throttled"] = ratio
    serious = any(r in SERIOUS for r in reasons)
    severity = WARNING if serious or (ratio is not None and ratio >= SLOWER_RATIO) else INFO
    name = view.series.gpu_names.get(key)
    title = (
        f"GPU:{key}{' (' + name + ')' if name else ''} throttled in {len(throttled)} of {len(w)} epochs "
        f"({', '.join(reasons) or 'reasons unknown'})"
    )
    if ratio is not None:
        title += f"; those epochs took {ratio:.2f}x as long"
    return Finding(KIND, severity, title, evidence, HINT, f"GPU:{key}", view.epoch_number(view.last))


def detect(view: RunAtEpoch) -> list[Finding]:
    return each_key(view, KIND, "gpu_throttled", lambda key: f"GPU:{key}", _device)


DETECTOR = Detector(name=KIND, detect=detect, persistence=PERSISTENCE)
