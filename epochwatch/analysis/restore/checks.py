"""The restore checks in the order they run, and running them on a run or on two runs.

`detect(run, lineage, parents)` is a pure function of records (and of the parent traces the
caller's ParentCache holds or reads). Checks that need later records (epochs, fit_start)
find nothing until those exist, so the same function serves the hook at restore time and
at each epoch (checkpoints/resume.py), the engine online and offline (through
detectors/restore.py), and `epochwatch compare` (`compare_findings`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from epochwatch.analysis.findings import Finding
from epochwatch.analysis.restore.best import check_best_replaced
from epochwatch.analysis.restore.continuation import check_loss_jump, check_slowdown
from epochwatch.analysis.restore.lineage import Lineage, build_lineage
from epochwatch.analysis.restore.machine import check_environment, check_versions
from epochwatch.analysis.restore.parents import ParentCache
from epochwatch.analysis.restore.planned import check_planned
from epochwatch.analysis.restore.restored import (
    check_modified,
    check_optimizer,
    check_slow_restore,
    model_changed,
)
from epochwatch.analysis.restore.resume import Resume, resumes, side_by_side
from epochwatch.analysis.restore.settings import check_hyperparameters, check_inputs
from epochwatch.analysis.restore.unmatched import check_unmatched
from epochwatch.analysis.run import Run

Check = Callable[[Resume], list[Finding]]

KINDS = (
    "checkpoint_modified",
    "optimizer_state_not_restored",
    "loss_jump_after_restore",
    "hyperparameter_changed_after_restore",
    "input_distribution_shift",
    "version_mismatch",
    "environment_changed",
    "slow_restore",
    "restore_slowdown",
    "best_checkpoint_replaced",
    "weights_not_restored",
    "resume_trains_nothing",
)

CHECKS: tuple[Check, ...] = (
    check_modified,
    check_unmatched,
    check_planned,
    check_optimizer,
    check_loss_jump,
    check_hyperparameters,
    check_inputs,
    check_versions,
    check_environment,
    check_slow_restore,
    check_slowdown,
    check_best_replaced,
)

# Checks of the file and the load alone, and of what it served: what runs for a restore no
# fit trains.
FILE_CHECKS: tuple[Check, ...] = (
    check_modified,
    check_unmatched,
    check_inputs,
    check_versions,
    check_environment,
    check_slow_restore,
)

# Checks that still mean something between two runs where neither restored the other.
COMPARE_CHECKS: tuple[Check, ...] = (
    check_hyperparameters,
    check_inputs,
    check_versions,
    check_environment,
    check_slowdown,
)


# Checks for a restore into another model (transfer learning): the file's, not the
# comparisons with the parent's training, whose loss, rate, inputs and pace were another
# task's.
MODEL_CHANGED_CHECKS: tuple[Check, ...] = (
    check_modified,
    check_unmatched,
    check_planned,
    check_versions,
    check_environment,
    check_slow_restore,
)


def detect(run: Run, lineage: Lineage | None = None, parents: ParentCache | None = None) -> list[Finding]:
    """All restore findings of `run`: every check on every restore (see resume.resumes)."""
    return [f for r in resumes(run, lineage, parents) for check in _checks(r) for f in check(r)]


def _checks(r: Resume) -> tuple[Check, ...]:
    if not r.trained:
        return FILE_CHECKS
    return MODEL_CHANGED_CHECKS if model_changed(r) else CHECKS


def compare_findings(base: Run, new: Run) -> list[Finding]:
    """What `new` implies against `base` (`epochwatch compare`).

    If `new` restored a save of `base`, these are the restore findings of that link. If not,
    `new` is judged as if it continued `base`: settings, inputs, versions, machine and speed
    (never the loss jump or the optimizer, which need a real resume).
    """
    lineage = build_lineage([base, new])
    linked = [r for r in resumes(new, lineage) if r.link is not None and r.link.parent == base.run_id]
    if linked:
        return [f for r in linked for check in CHECKS for f in check(r)]
    r = side_by_side(base, new)
    return [f for check in COMPARE_CHECKS for f in check(r)]


def record_fields(f: Finding) -> dict[str, Any]:
    """A restore finding as the hook writes it into a `finding` record and `compare` into its
    JSON: target and epoch only when known, evidence as the check built it."""
    out: dict[str, Any] = {
        "kind": f.kind,
        "severity": f.severity,
        "title": f.title,
        "evidence": f.evidence,
        "hint": f.hint,
    }
    if f.target is not None:
        out["target"] = f.target
    if f.epoch is not None:
        out["epoch"] = f.epoch
    return out
