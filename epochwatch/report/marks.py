"""Vertical marks on the report's plots: where a restore happened, where a finding was made.

`axis` is figures._Axis (x of a position between epochs, x of an epoch number); the marks
are plain dicts that plots.py draws as labelled vertical lines.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epochwatch.analysis.run import Run

# Which figure shows a finding kind (its mark goes there).
FINDING_FIGURE = {
    "slowdown": "time",
    "host_contention": "time",
    "gpu_throttling": "time",
    "loss_jump_after_restore": "loss",
    "hyperparameter_changed_after_restore": "loss",
    "optimizer_state_not_restored": "loss",
    "input_distribution_shift": "loss",
    "host_memory_growth": "host_memory",
    "swap_pressure": "host_memory",
    "gpu_memory_growth": "gpu_memory",
    "gpu_memory_pressure": "gpu_memory",
    "retrace_storm": "retraces",
    "disk_growth": "dirs",
}


def restore_marks(run: Run, axis: Any) -> list[dict[str, Any]]:
    """A vertical mark at each restore, labelled with the save it came from."""
    marks = []
    for restore, pos in zip(run.restores, run.restore_positions, strict=False):
        x = axis.at_position(pos)
        if x is None:
            continue
        name = os.path.basename(str(restore.get("path", "?")))
        parent = restore.get("parent") if isinstance(restore.get("parent"), Mapping) else None
        label = f"restored {name}"
        if parent:
            label += f" saved by run {parent.get('run_id')}"
            if isinstance(parent.get("save_iterations"), int):
                label += f" at step {parent['save_iterations']}"
            if parent.get("match") == "path":
                label += " (the file was modified since)"
        marks.append({"x": x, "label": label, "short": "restore", "cls": "restore"})
    return marks


def finding_marks(findings: Sequence[Mapping[str, Any]], axis: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        fig_id = FINDING_FIGURE.get(str(f.get("kind")))
        if fig_id == "dirs":
            fig_id = f"dirs:{f.get('target')}"
        x = axis.of_epoch(f.get("epoch"))
        if fig_id is None or x is None:
            continue
        label = f"{f.get('kind')} reported at epoch {f.get('epoch')}: {f.get('title')}"
        out.setdefault(fig_id, []).append(
            {"x": x, "label": label, "short": str(f.get("kind")), "cls": "finding", "lane": 1}
        )
    return out
