"""The detectors, registered in one place: one module per finding family.

Each module named in MODULES defines `DETECTOR`, a `Detector` (see base.py). Adding a
detector is one new module and one line here; the order is the order they run in.
"""

from __future__ import annotations

import importlib

from epochwatch.analysis.detectors.base import Detector

__all__ = ["MODULES", "Detector", "all_detectors"]

MODULES: tuple[str, ...] = (
    "slowdown",
    "host_memory",
    "gpu_memory",
    "retraces",
    "disk",
    "swap",
    "gpu_pressure",
    "contention",
    "gpu_contention",
    "throttling",
    "input_bound",
    "restore",
    "models_in_loop",
    "optimizer_recreated",
    "eager",
    "predict_in_loop",
    "iterator_per_step",
    "cleanup_in_loop",
    "weights_carried_over",
    "callback_reset_each_fit",
)

_loaded: tuple[Detector, ...] | None = None


def all_detectors() -> tuple[Detector, ...]:
    """Every registered detector, imported on first use (and checked for duplicate names)."""
    global _loaded
    if _loaded is None:
        found: list[Detector] = []
        names: set[str] = set()
        for module in MODULES:
            detector = importlib.import_module(f"{__name__}.{module}").DETECTOR
            if detector.name in names:
                raise RuntimeError(f"two detectors named {detector.name!r}")
            names.add(detector.name)
            found.append(detector)
        _loaded = tuple(found)
    return _loaded
