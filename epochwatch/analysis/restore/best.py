"""`best_checkpoint_replaced`: a resumed run's "best" checkpoint overwrote its parent's better one.

`ModelCheckpoint(save_best_only=True)` keeps its best value in the callback, which a new
process makes anew (BackupAndRestore restores the model and the epoch, not the callbacks):
its first epoch always "improves" on nothing, and its save replaces the best file the parent
kept there with a worse model (keras#17012). Saves made by a ModelCheckpoint carry `best`
(the monitored value at that save, and which way is better); the check compares the
resumed run's first such save to each path with the parent's last one there.
"""

from __future__ import annotations

import math
import os
from typing import Any

from epochwatch.analysis.findings import Finding
from epochwatch.analysis.restore.lineage import restored_at, saved_at
from epochwatch.analysis.restore.resume import Resume

Record = dict[str, Any]


def check_best_replaced(r: Resume) -> list[Finding]:
    if r.parent is None or r.compared:
        return []
    after = restored_at(r.restore)
    firsts: dict[str, dict[str, Any]] = {}
    for save in r.run.saves:
        best, path = _best(save), save.get("path")
        if best is not None and isinstance(path, str) and saved_at(save) >= after and path not in firsts:
            firsts[path] = best
    out = []
    for path, best in firsts.items():
        kept = _kept(r.parent.saves, path, best["monitor"], after)
        if kept is None or not _worse(best, kept):
            continue
        monitor, name = best["monitor"], os.path.basename(path)
        out.append(
            Finding(
                "best_checkpoint_replaced",
                "warning",
                f"{name} (ModelCheckpoint, save_best_only) now holds a worse model: this resumed run's "
                f"first save put {monitor} {best['value']:.4g} where run {r.parent.run_id} had kept "
                f"{kept['value']:.4g}",
                {
                    "path": path,
                    "monitor": monitor,
                    "saved_value": best["value"],
                    "parent_best": kept["value"],
                    "parent_run": r.parent.run_id,
                    "lower_is_better": best["lower_is_better"],
                },
                "A ModelCheckpoint made in a new process starts with no best value (BackupAndRestore "
                "restores the model and the epoch, not the callbacks), so its first epoch always "
                f"overwrites the best file. Pass ModelCheckpoint(..., initial_value_threshold="
                f"{kept['value']:.6g}) when resuming (the best {monitor} so far, e.g. read from the "
                "CSVLogger's log), or give each run its own best file.",
                path,
                r.first_epoch,
            )
        )
    return out


def _best(save: Record) -> dict[str, Any] | None:
    best = save.get("best")
    if not isinstance(best, dict):
        return None
    value, monitor, lower = best.get("value"), best.get("monitor"), best.get("lower_is_better")
    if not (isinstance(value, int | float) and math.isfinite(value) and isinstance(monitor, str)):
        return None
    return {"value": float(value), "monitor": monitor, "lower_is_better": lower is not False}


def _kept(saves: list[Record], path: str, monitor: str, before: float) -> dict[str, Any] | None:
    """What the parent's last save to `path` of that monitor held (before the restore)."""
    for save in reversed(saves):
        best = _best(save)
        if (
            save.get("path") == path
            and best is not None
            and best["monitor"] == monitor
            and saved_at(save) <= before
        ):
            return best
    return None


def _worse(best: dict[str, Any], kept: dict[str, Any]) -> bool:
    if best["lower_is_better"] != kept["lower_is_better"]:
        return False
    return bool(best["value"] > kept["value"] if best["lower_is_better"] else best["value"] < kept["value"])
