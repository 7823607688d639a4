"""disk_growth: a watched directory keeps growing, with "full in about N epochs / hours".

Series per directory in the epoch records' `dirs`: bytes and file counts, each as a
trailing minimum over ENVELOPE epochs, so checkpoint rotation (a sawtooth) only counts
when its floor rises. Free space: measured now with shutil.disk_usage when the path
exists on this host (online that is the truth; offline it is the disk as it is now),
else the trace's own `free_bytes` for the directory when it has one; the evidence says
which.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from epochwatch.analysis import leaks
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import INFO, Finding
from epochwatch.analysis.trend import GrowthRule, assess_growth
from epochwatch.analysis.units import fmt_bytes
from epochwatch.analysis.view import RunAtEpoch

KIND = "disk_growth"
MIB = 1024.0 * 1024.0
ENVELOPE = 8
BYTES_RULE = GrowthRule(
    window=60,
    min_points=10,
    alpha=0.001,
    min_rel_slope=0.002,
    min_abs_slope=1 * MIB,
    min_rel_growth=0.05,
    newest_frac=0.4,
    step_ratio=0.8,
    autocorr=False,
)
FILES_RULE = GrowthRule(
    window=60,
    min_points=10,
    alpha=0.001,
    min_rel_slope=0.002,
    min_abs_slope=0.5,
    min_rel_growth=0.05,
    newest_frac=0.4,
    step_ratio=0.8,
    autocorr=False,
)
PERSISTENCE = 3

_HINTS = {
    "checkpoint": "keep at most K checkpoints: ModelCheckpoint(..., save_best_only=True) or "
    "tf.train.CheckpointManager(checkpoint, directory, max_to_keep=K); or save every N epochs "
    "(save_freq=N * steps_per_epoch)",
    "backup": "BackupAndRestore keeps one backup and deletes it at the end; growth here means "
    "something else writes into its directory: give it a directory of its own",
    "tensorboard": "TensorBoard logs grow with every epoch written: lower histogram_freq, "
    "set write_graph=False / profile_batch=0, and start a new log directory per run",
    "temp": "temporary files pile up: something writes to the temp directory and never deletes "
    "(tempfile.NamedTemporaryFile(delete=False), tf.data cache('') files, saved models for export); "
    "use a tempfile.TemporaryDirectory() context or delete them",
}
_DEFAULT_HINT = (
    "the run writes into this directory every epoch and never deletes: rotate what it writes "
    "(keep the newest K files), or write less often"
)


def free_space(view: RunAtEpoch, path: str) -> tuple[float, str]:
    """(free bytes, where that number comes from)."""
    if os.path.isdir(path):
        try:
            return float(shutil.disk_usage(path).free), "measured on this host at analysis time"
        except OSError:
            pass
    free = view.latest("dir_free", key=path)
    if free == free:
        return free, "recorded in the trace"
    return float("nan"), "unknown"


def _finding(view: RunAtEpoch, path: str) -> Finding | None:
    wb = view.window("dir_bytes", path, size=BYTES_RULE.window, envelope=ENVELOPE)
    gb = assess_growth(wb.values, BYTES_RULE)
    wf = view.window("dir_files", path, size=FILES_RULE.window, envelope=ENVELOPE)
    gf = assess_growth(wf.values, FILES_RULE) if gb is None else None
    if gb is None and gf is None:
        return None
    role = view.series.dir_roles.get(path, "user")
    files_now = view.latest("dir_files", key=path)
    bytes_now = view.latest("dir_bytes", key=path)
    evidence: dict[str, Any] = {"role": role, "bytes": bytes_now, "files": files_now}
    hint = _HINTS.get(role, _DEFAULT_HINT)
    epoch = view.epoch_number(view.last)
    if gb is not None:
        free, source = free_space(view, path)
        proj = leaks.projection(view, 0.0, free, gb.slope)
        evidence.update(leaks.growth_evidence(view, gb, wb))
        evidence.update(proj)
        evidence["free_bytes"] = free
        evidence["free_source"] = source
        evidence["envelope_epochs"] = ENVELOPE
        title = f"{path} grows {fmt_bytes(gb.slope)} per epoch ({fmt_bytes(gb.start)} -> {fmt_bytes(gb.now)})"
        when = leaks.when_text(proj)
        if when:
            title += f"; the disk ({fmt_bytes(free)} free) is full {when}"
        return Finding(KIND, leaks.severity(proj), title, evidence, hint, path, epoch)
    assert gf is not None
    evidence.update(leaks.growth_evidence(view, gf, wf))
    evidence["series"] = "files"
    evidence["unit"] = "count"  # slope, start and now are file counts, not bytes
    title = (
        f"{path} gains {gf.slope:.1f} files per epoch ({gf.start:.0f} -> {gf.now:.0f}); the bytes stay small"
    )
    return Finding(KIND, INFO, title, evidence, hint, path, epoch)


def detect(view: RunAtEpoch) -> list[Finding]:
    found: list[Finding] = []
    for path in view.series.keys("dir_bytes"):
        if view.done(KIND, path):
            continue
        f = _finding(view, path)
        if f is not None:
            found.append(f)
    return found


DETECTOR = Detector(name=KIND, detect=detect, persistence=PERSISTENCE)
