"""disk_growth: a watched directory keeps growing, with "full in about N epochs / hours".

Series per directory in the epoch records' `dirs`: bytes and file counts, each as a
trailing minimum over ENVELOPE epochs, so checkpoint rotation (a sawtooth) only counts
when its floor rises. Free space: the trace's own `free_bytes` for the directory at
the moment judged (the hook's `dirs` block and the daemon's workers record it), else
measured now with shutil.disk_usage when the path exists on this host (an older trace:
offline that is the disk as it is now); the evidence says which. The daemon turns measuring off (MEASURE_HERE): there the path comes from a user,
and root does not stat a path a user named; its per-user workers record `free_bytes` for
the directories they watch instead (docs/security.md, "Privilege separation").
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from epochwatch.analysis import leaks
from epochwatch.analysis.detectors.base import Detector, each_key
from epochwatch.analysis.findings import INFO, Finding
from epochwatch.analysis.growth import judge
from epochwatch.analysis.series import SIBLINGS
from epochwatch.analysis.shapes import BlatantRule
from epochwatch.analysis.trend import GrowthRule
from epochwatch.analysis.units import MIB, fmt_bytes
from epochwatch.analysis.view import RunAtEpoch

KIND = "disk_growth"
ENVELOPE = 8
BYTES_RULE = GrowthRule(min_abs_slope=1 * MIB, autocorr=False)  # otherwise trend.py's defaults
FILES_RULE = GrowthRule(min_abs_slope=0.5, autocorr=False)
PERSISTENCE = 3
# A short run's directory that fills in a straight line (no rotation to see through).
BLATANT_BYTES = BlatantRule(
    min_rel_slope=0.05, min_abs_slope=1 * MIB, min_rel_growth=0.3, min_r2=0.95, new_high=True
)
BLATANT_FILES = BlatantRule(
    min_rel_slope=0.05, min_abs_slope=5, min_rel_growth=0.3, min_r2=0.95, new_high=True
)

_HINTS = {
    "checkpoint": "keep at most K checkpoints: ModelCheckpoint(..., save_best_only=True) or "
    "tf.train.CheckpointManager(checkpoint, directory, max_to_keep=K); or save every N epochs "
    "(save_freq=N * steps_per_epoch)",
    "backup": "BackupAndRestore keeps one backup and deletes it at the end; growth here means "
    "something else writes into its directory: give it a directory of its own",
    "tensorboard": "TensorBoard logs grow with every epoch written: lower histogram_freq, "
    "set write_graph=False / profile_batch=0, and start a new log directory per run",
    "temp": "temporary files pile up: something writes to the temp directory and never deletes "
    "(tempfile.NamedTemporaryFile(delete=False), tf.data cache(filename) files, saved models for "
    "export); use a tempfile.TemporaryDirectory() context or delete them",
    "data": "tf.data writes its snapshot or cache files here and a new pipeline (other data, "
    "other steps before the snapshot or cache) writes them anew beside the old ones: reuse one "
    "pipeline per directory, or delete the directory when the pipeline is done",
}
SIBLINGS_HINT = (
    "each trial (or round) writes into a directory of its own (its checkpoints, its tf.data "
    "snapshot or cache files) and none is removed: delete a "
    "trial's directory when it is done (a tempfile.TemporaryDirectory() context per trial), "
    "or keep only the best trials' files"
)
_DEFAULT_HINT = (
    "the run writes into this directory every epoch and never deletes: rotate what it writes "
    "(keep the newest K files), or write less often"
)


# Whether a path a trace names may be measured on this host (see the module docstring).
MEASURE_HERE = True


def free_space(view: RunAtEpoch, path: str) -> tuple[float, str]:
    """(free bytes, where that number comes from): the trace's, of the moment judged, where
    it has one (the hook and the daemon's workers record it), else measured now."""
    free = view.latest("dir_free", key=path)
    if free == free:
        return free, "recorded in the trace"
    if MEASURE_HERE and os.path.isdir(path):
        try:
            return float(shutil.disk_usage(path).free), "measured on this host at analysis time"
        except OSError:
            pass
    return float("nan"), "unknown"


ROTATION_SLACK = 0.5  # of a checkpoint's size, beyond K of them (the manager's index file)


def _rotated(view: RunAtEpoch, path: str) -> bool:
    """Whether a CheckpointManager that keeps K checkpoints in `path` bounds it, and it holds
    no more than those K (by the saves' own sizes): a directory that fills up to its K and
    holds is rotation at work (tensorflow/models' step loop, max_to_keep=3: "grows 16.1 MiB
    per epoch ... it stopped growing", fix "keep at most K checkpoints")."""
    prefix = path.rstrip("/") + "/"
    saves = [save for save in view.run.saves if str(save.get("path", "")).startswith(prefix)]
    kept = {
        keeps.get("max_to_keep") if isinstance(keeps := save.get("keeps"), dict) else None for save in saves
    }
    sizes = sorted(b for save in saves if isinstance(b := save.get("bytes"), int | float) and b > 0)
    if len(kept) != 1 or not sizes:
        return False
    k = kept.pop()
    if not isinstance(k, int) or isinstance(k, bool) or k <= 0:
        return False
    now = view.latest("dir_bytes", key=path)
    return now == now and now <= (k + ROTATION_SLACK) * sizes[len(sizes) // 2]


def _finding(view: RunAtEpoch, path: str) -> Finding | None:
    if _rotated(view, path):
        return None
    # A loop of fits (unit "fit"): one point per iteration, what each left on disk; rotation
    # within a fit is already behind it, so no floor over several points.
    envelope = ENVELOPE if view.unit != "fit" else 1
    in_bytes = judge(view, "dir_bytes", BYTES_RULE, key=path, envelope=envelope, blatant=BLATANT_BYTES)
    verdict = in_bytes or judge(
        view, "dir_files", FILES_RULE, key=path, envelope=envelope, blatant=BLATANT_FILES
    )
    if verdict is None:
        return None
    g, w = verdict.growth, verdict.window
    role = view.series.dir_roles.get(path, "user")
    files_now = view.latest("dir_files", key=path)
    bytes_now = view.latest("dir_bytes", key=path)
    evidence: dict[str, Any] = {"role": role, "bytes": bytes_now, "files": files_now, "rule": verdict.rule}
    hint = (
        (SIBLINGS_HINT if path.endswith(SIBLINGS) else "")
        or _exported(view, path)
        or _kept_already(view, path)
        or _debug_dump(view, path)
        or _tensorboard(view, role)
        or _HINTS.get(role, _DEFAULT_HINT)
    )
    epoch = view.epoch_number(view.last)
    if in_bytes is not None:
        free, source = free_space(view, path)
        evidence.update(leaks.growth_evidence(view, g, w, bytes_now))
        proj = leaks.projection(view, 0.0, free, g.slope, evidence["slope_per_epoch"])
        evidence.update(proj, free_bytes=free, free_source=source)
        evidence.update(
            envelope_epochs=envelope if verdict.rule == "trend" else 1, current=bytes_now, base=g.start
        )
        slope, per = view.said(g.slope, evidence["slope_per_epoch"])
        title = f"{_named(path)} grow{'' if path.endswith(SIBLINGS) else 's'} {fmt_bytes(slope)} {per} ({fmt_bytes(evidence['start'])} -> {fmt_bytes(bytes_now)})"
        when = leaks.when_text(proj, view.noun)
        if when:
            evidence["consequence"] = f"the disk ({fmt_bytes(free)} free) is full {when}"
            title += f"; {evidence['consequence']}"
        severity = leaks.soon(proj, leaks.severity(proj, 0.0))  # a disk full within the hour
        return Finding(KIND, severity, title, evidence, hint, path, epoch, hold=verdict.hold)
    evidence.update(leaks.growth_evidence(view, g, w, files_now))
    # slope, start and now are file counts, not bytes
    evidence.update(series="files", unit="count", current=files_now, base=g.start)
    slope, per = view.said(g.slope, evidence["slope_per_epoch"])
    title = f"{_named(path)} gain{'' if path.endswith(SIBLINGS) else 's'} {slope:.1f} files {per} ({evidence['start']:.0f} -> {files_now:.0f}); the bytes stay small"
    return Finding(KIND, INFO, title, evidence, hint, path, epoch, hold=verdict.hold)


EXPORTS_HINT = (
    "each SavedModel export (tf.saved_model.save; Keras' model.export calls it) writes a whole new "
    "directory here and none is removed: export into one directory, overwritten each time "
    "(shutil.rmtree(path) before model.export(path)), or export only at the end of training or "
    "every N epochs, and delete the exports you do not serve"
)


def _exported(view: RunAtEpoch, path: str) -> str:
    """The fix where what is saved into `path` is SavedModel exports (save.format
    `saved_model`: tf.saved_model.save, model.export), not checkpoints a ModelCheckpoint or a
    CheckpointManager could rotate (tensorflow#23025: an export directory per epoch); ''
    otherwise."""
    prefix = path.rstrip("/") + "/"
    formats = {
        save.get("format")
        for save in view.run.saves
        if str(save.get("path", "")).startswith(prefix) or save.get("path") == path
    }
    return EXPORTS_HINT if formats == {"saved_model"} else ""


def _kept_already(view: RunAtEpoch, path: str) -> str:
    """The fix where the saves into `path` already keep only some checkpoints (their
    `keeps`: ModelCheckpoint's save_best_only, a CheckpointManager's max_to_keep), so the
    fix does not repeat the script (tensorflow#38668: save_best_only=True with {epoch}-{batch}
    in the file name); '' otherwise."""
    prefix = path.rstrip("/") + "/"
    keeps: dict[str, Any] = {}
    for save in view.run.saves:
        if str(save.get("path", "")).startswith(prefix) and isinstance(save.get("keeps"), dict):
            keeps.update(save["keeps"])
    if keeps.get("save_best_only") is True:
        return (
            "ModelCheckpoint already saves only improvements (save_best_only=True), but its filepath "
            "names each one anew ({epoch} or {batch} in it), so every improvement is a new file: give "
            "it one fixed file name (best.keras) or delete the older files"
        )
    if isinstance(keeps.get("max_to_keep"), int) and not isinstance(keeps["max_to_keep"], bool):
        return (
            f"the CheckpointManager keeps {keeps['max_to_keep']} checkpoints already, and the directory "
            "still grows: something else writes into it (give the manager a directory of its own), or "
            "each checkpoint grows (the model or the optimizer state it holds)"
        )
    return ""


SUMMARIES_HINT = (
    "the TensorBoard summaries written here grow with every step that writes them: write them every N steps "
    "(`if step % N == 0:` or tf.summary.record_if), keep histograms and images rarer than scalars, "
    "and start a new log directory per run (delete old runs' logs)"
)


def _debug_dump(view: RunAtEpoch, path: str) -> str:
    """The fix for TensorFlow Debugger V2's dump directory (`fit_start.debug_dump`), left on
    after a debugging session; '' for any other directory."""
    dump = next((f.get("debug_dump") for f in reversed(view.run.fits) if f.get("debug_dump")), None)
    if not isinstance(dump, dict) or dump.get("dump_root") != path:
        return ""
    mode = dump.get("tensor_debug_mode")
    keep = dump.get("circular_buffer_size")
    said = ", ".join(
        part
        for part in (
            f"tensor_debug_mode={mode}" if isinstance(mode, str) else "",
            f"circular_buffer_size={keep}" if isinstance(keep, int) else "",
        )
        if part
    )
    return (
        f"TensorFlow Debugger V2 dumps every op of every step here (enable_dump_debug_info({said})), "
        "a debugging aid left on that also slows each step many times over: remove the call once the "
        "NaN is found, or call tf.debugging.experimental.disable_dump_debug_info(); to keep it, dump "
        "less (tensor_debug_mode='NO_TENSOR', circular_buffer_size=1000, op_regex=...)"
    )


def _tensorboard(view: RunAtEpoch, role: str) -> str:
    """The fix for a TensorBoard log directory, from what the fit's callback writes (its
    `fit_start.tensorboard`): a script that wrote images each epoch into a per-run directory
    was told to lower histogram_freq and start a new directory per run; '' where unknown."""
    settings = next((f.get("tensorboard") for f in reversed(view.run.fits) if f.get("tensorboard")), None)
    if role != "tensorboard":
        return ""
    if not isinstance(settings, dict):
        return SUMMARIES_HINT  # no callback: the script's own tf.summary writer
    heavy = []
    if settings.get("write_images") is True:
        heavy.append("write_images=True (every layer's weights as images, each epoch): set it False")
    for name, said in (
        ("histogram_freq", "{0} (every weight's histogram every {0} epoch(s)): raise it or set 0"),
        ("embeddings_freq", "{0}: raise it or set 0"),
        ("update_freq", "{0} (scalars every {0} batch(es)): use 'epoch'"),
    ):
        freq = settings.get(name)
        if isinstance(freq, int) and not isinstance(freq, bool) and freq > 0:
            heavy.append(f"{name}={said.format(freq)}")
    if not heavy:
        return "TensorBoard writes only scalars here: the logs still grow with every epoch; delete old runs' logs"
    return "what the TensorBoard callback is set to write makes most of it: " + "; ".join(heavy)


def current(view: RunAtEpoch, finding: Finding) -> float:
    column = "dir_files" if finding.evidence.get("series") == "files" else "dir_bytes"
    return view.latest(column, key=finding.target) if finding.target else float("nan")


def detect(view: RunAtEpoch) -> list[Finding]:
    found = each_key(view, KIND, "dir_bytes", str, _finding)
    # One problem, one finding: directories side by side and their sum (`<parent>/*`) are
    # the same bytes; the sum is said only where none of them grows on its own.
    said = {k for k in view.series.keys("dir_bytes") if view.reported(KIND, k)}
    alone = {_parent(f.target) for f in found if f.target and not f.target.endswith(SIBLINGS)}
    alone |= {_parent(k) for k in said if not k.endswith(SIBLINGS)}
    summed = {k for k in said if k.endswith(SIBLINGS)}
    sums = {p + SIBLINGS for p in alone}

    def kept(target: str | None) -> bool:
        if not target:
            return True
        if target.endswith(SIBLINGS):  # not where one of them grows on its own (said, or now)
            return target not in sums
        return _parent(target) + SIBLINGS not in summed  # not one of a sum said (its updates are)

    return [f for f in found if kept(f.target)]


def _named(path: str) -> str:
    """A target as a title says it: sibling directories' sum by what it is."""
    if path.endswith(SIBLINGS):
        return f"the directories this run writes into under {path[: -len(SIBLINGS)] or '/'}"
    return path


def _parent(path: str) -> str:
    return os.path.dirname(path.rstrip("/")).rstrip("/")


DETECTOR = Detector(
    name=KIND, detect=detect, persistence=PERSISTENCE, current=current, intervals=True, fits=True
)
