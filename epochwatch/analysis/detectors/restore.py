"""Restore and resume findings: what changed between a run and the run it resumed from.

For each `restore` record of a run, the run that saved those bytes (the parent, found by
hash through `epochwatch.analysis.lineage`) is compared with what the child did right
after the restore:

- `checkpoint_modified`: the bytes restored are not the bytes last saved at that path.
- `optimizer_state_not_restored`: a fresh optimizer (step 0) where the parent or the file
  had taken N steps.
- `loss_jump_after_restore`: the first epoch's loss against the parent's last, in units of
  the parent's own epoch-to-epoch variation.
- `hyperparameter_changed_after_restore`: learning rate, schedule position, batch size,
  optimizer class/config, loss.
- `input_distribution_shift`: the child's input statistics far from the parent's (the
  scaler that was not reapplied).
- `version_mismatch`: the file or the parent says another Keras/TF than this run has.
- `environment_changed`: GPU model, driver, CPU count, Python.
- `slow_restore`: load time against file size, with the format's expected cost.
- `restore_slowdown`: post-restore epochs slower than the parent's steady state.

`detect(run, context)` is a pure function of records. `context` may be (or carry, as
`.lineage`) a Lineage; without one, a restore's own `parent` field (written by the hook at
restore time, or by `build_lineage` offline) is followed to the parent's trace. Checks that
need later records (epochs, fit_start) find nothing until those exist, so the same function
serves the hook at restore time, at each epoch, the daemon's engine and the report.

DETECTOR plugs it into the analysis registry (one finding per kind and restored path).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.input_compare import INPUT_HINT, input_difference
from epochwatch.analysis.lineage import (
    MATCH_PATH,
    MATCH_SHA256,
    Lineage,
    Link,
    build_lineage,
    known_run,
    restored_at,
    saved_at,
)
from epochwatch.trace.reader import TraceError
from epochwatch.trace.run import Run, load_run

Record = dict[str, Any]

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
)

# loss jump: the jump must exceed this many "typical" parent epoch-to-epoch changes ...
LOSS_JUMP_SCALES = 4.0
# ... and this fraction of the parent's last loss (a plateaued curve has tiny changes).
LOSS_JUMP_MIN_FRACTION = 0.10
# input shift: |mean change| in parent standard deviations, or std ratio beyond this factor.
SHIFT_Z = 3.0
SHIFT_STD_RATIO = 3.0
# restore slowdown: post-warm-up epochs this much slower per sample, and by at least this
# many seconds per epoch (epochs of a tenth of a second are all noise).
SLOWDOWN_RATIO = 1.5
SLOWDOWN_MIN_SECONDS = 1.0
# slow restore: (fixed seconds, bytes per second) a healthy local load of each format takes.
EXPECTED_LOAD = {
    "keras": (1.0, 200e6),  # unzip, rebuild and compile the model, read HDF5 in the zip
    "h5": (1.0, 200e6),
    "weights.h5": (0.3, 300e6),
    "tf_checkpoint": (0.3, 500e6),
    "saved_model": (3.0, 200e6),  # restores concrete functions too
}
SLOW_RESTORE_FACTOR = 3.0
SLOW_RESTORE_MIN_SECONDS = 5.0
# How far after the restore the post-restore checks look (epochs).
WINDOW = 10


def finding(
    kind: str,
    severity: str,
    title: str,
    evidence: dict[str, Any],
    hint: str,
    target: str | None,
    epoch: int | None = None,
) -> Record:
    out: Record = {"kind": kind, "severity": severity, "title": title, "evidence": evidence, "hint": hint}
    if target is not None:
        out["target"] = target
    if epoch is not None:
        out["epoch"] = epoch
    return out


# -- what a restore is compared with ---------------------------------------------------


@dataclass
class Resume:
    """One restore of `run`, with its parent (if known) and the records around it."""

    run: Run
    restore: Record
    parent: Run | None
    link: Link | None
    child_fit: Record | None = None
    child_epochs: list[Record] = field(default_factory=list)
    parent_fit: Record | None = None
    parent_epochs: list[Record] = field(default_factory=list)
    # True when two runs are compared side by side (`epochwatch compare`) rather than
    # one resuming the other: the same checks, worded without "resumed".
    compared: bool = False

    @property
    def target(self) -> str:
        return str(self.restore.get("path", "?"))

    @property
    def save(self) -> Record | None:
        return self.link.save if self.link is not None else None

    @property
    def by_hash(self) -> bool:
        return self.link is not None and self.link.match == MATCH_SHA256 and self.parent is not None

    @property
    def first_epoch(self) -> int | None:
        if self.child_epochs and isinstance(self.child_epochs[0].get("epoch"), int):
            return int(self.child_epochs[0]["epoch"])
        return None

    def parent_evidence(self) -> dict[str, Any]:
        if self.link is None:
            return {}
        out: dict[str, Any] = {"parent_run": self.link.parent}
        if self.link.save.get("path") is not None:
            out["saved_path"] = self.link.save["path"]
        if self.parent_epochs and isinstance(self.parent_epochs[-1].get("epoch"), int):
            out["parent_epoch_at_save"] = self.parent_epochs[-1]["epoch"]
        return out


def _ts(rec: Record, key: str = "t") -> float:
    value = rec.get(key, rec.get("t", 0.0))
    return float(value) if isinstance(value, int | float) else 0.0


def build_resume(run: Run, restore: Record, parent: Run | None, link: Link | None) -> Resume:
    """Gather the child's records after the restore (up to the next restore) and the parent's
    records up to the save."""
    r = Resume(run, restore, parent, link)
    when = restored_at(restore)
    later = [restored_at(x) for x in run.restores if restored_at(x) > when + 1e-6]
    until = min(later) if later else math.inf
    r.child_fit = next((f for f in run.fits if when - 1e-3 <= _ts(f) < until), None)
    r.child_epochs = [e for e in run.epochs if when - 1e-3 <= _ts(e, "start") < until][: WINDOW + 2]
    if parent is not None and link is not None and link.match == MATCH_SHA256:
        at = saved_at(link.save)
        r.parent_fit = next((f for f in reversed(parent.fits) if _ts(f) <= at), None)
        r.parent_epochs = [e for e in parent.epochs if _ts(e, "start") < at]
    return r


# -- parents ---------------------------------------------------------------------------

_PARENT_CACHE: dict[str, Run | None] = {}
_PARENT_CACHE_MAX = 8


def _parent_from_record(run: Run, restore: Record, loader: Callable[[Path], Run]) -> tuple[Run, Link] | None:
    """Follow the `parent` field the hook wrote into the restore record to the parent's trace."""
    info = restore.get("parent")
    if not isinstance(info, dict) or not isinstance(info.get("trace"), str):
        return None
    trace = info["trace"]
    candidates = [Path(trace)]
    if run.path is not None:  # traces gathered elsewhere: look next to this run's trace too
        candidates.append(run.path.parent / Path(trace).name)
    for path in candidates:
        key = str(path)
        known = known_run(path)
        if known is not None:
            _PARENT_CACHE[key] = known
        if key not in _PARENT_CACHE:
            if len(_PARENT_CACHE) >= _PARENT_CACHE_MAX:
                _PARENT_CACHE.pop(next(iter(_PARENT_CACHE)))
            try:
                _PARENT_CACHE[key] = loader(path) if path.is_file() else None
            except (TraceError, OSError):
                _PARENT_CACHE[key] = None
        parent = _PARENT_CACHE[key]
        if parent is None:
            continue
        save = _matching_save(parent, info)
        if save is not None:
            match = str(info.get("match", MATCH_SHA256))
            return parent, Link(run.run_id, parent.run_id, restore, save, match)
    return None


def _matching_save(parent: Run, info: dict[str, Any]) -> Record | None:
    sha, at = info.get("save_sha256"), info.get("saved_at")
    for save in reversed(parent.saves):
        if sha is not None and save.get("sha256") == sha and (at is None or abs(saved_at(save) - at) < 1e-3):
            return save
    for save in reversed(parent.saves):
        if sha is not None and save.get("sha256") == sha:
            return save
    return None


def resumes(run: Run, context: Any = None, loader: Callable[[Path], Run] = load_run) -> list[Resume]:
    """Every restore of `run`, with its parent from the context's lineage or the record."""
    lineage: Lineage | None = context if isinstance(context, Lineage) else getattr(context, "lineage", None)
    out = []
    for restore in run.restores:
        found = lineage.parent_of(run.run_id, restore) if isinstance(lineage, Lineage) else None
        if found is None:
            found = _parent_from_record(run, restore, loader)
        parent, link = found if found is not None else (None, None)
        out.append(build_resume(run, restore, parent, link))
    return out


def detect(run: Run, context: Any = None) -> list[Record]:
    """All restore findings of `run` (see the module docstring)."""
    out: list[Record] = []
    for r in resumes(run, context):
        for check in CHECKS:
            out.extend(check(r))
    return out


# -- checks ----------------------------------------------------------------------------


def check_modified(r: Resume) -> list[Record]:
    if r.link is None or r.link.match != MATCH_PATH:
        return []
    save, restore = r.link.save, r.restore
    same_size = save.get("bytes") == restore.get("bytes")
    evidence = {
        "path": r.target,
        "saved_by_run": r.link.parent,
        "saved_sha256": save.get("sha256"),
        "saved_bytes": save.get("bytes"),
        "saved_at": saved_at(save),
        "restored_sha256": restore.get("sha256"),
        "restored_bytes": restore.get("bytes"),
        "restored_at": restored_at(restore),
    }
    size = "the same size but different content" if same_size else "a different size"
    return [
        finding(
            "checkpoint_modified",
            "warning",
            f"Restored {os.path.basename(r.target)} is not the file run {r.link.parent} saved there ({size})",
            evidence,
            f"Something rewrote {r.target} after it was saved: another job saving to the same path, an "
            "interrupted copy or sync, or a manual edit. Give each run its own checkpoint path (put the run "
            f"id or a timestamp in it), check `sha256sum {r.target}` against {save.get('sha256')}, and "
            "restore the checkpoint whose hash matches.",
            r.target,
            r.first_epoch,
        )
    ]


def _child_start_step(r: Resume) -> tuple[int | None, str]:
    """The optimizer's step right after the restore, and where that number comes from."""
    first = r.child_epochs[0] if r.child_epochs else None
    if first is not None and isinstance(first.get("iterations"), int) and isinstance(first.get("steps"), int):
        return max(0, first["iterations"] - first["steps"]), "first epoch after the restore"
    opt = r.restore.get("optimizer")
    keras_file = r.restore.get("format") in ("keras", "h5", "weights.h5")
    if keras_file and isinstance(opt, dict) and isinstance(opt.get("iterations"), int):
        return opt["iterations"], "optimizer right after the restore"
    return None, ""


def check_optimizer(r: Resume) -> list[Record]:
    restore = r.restore
    saved_steps = None
    if r.by_hash and r.save is not None and isinstance(r.save.get("iterations"), int):
        saved_steps = r.save["iterations"]
    file_steps = restore.get("file_iterations") if isinstance(restore.get("file_iterations"), int) else None
    steps = max((s for s in (saved_steps, file_steps) if s is not None), default=None)
    if not steps:
        return []
    start, source = _child_start_step(r)
    if start is None or start > 0:
        return []
    opt = restore.get("optimizer") if isinstance(restore.get("optimizer"), dict) else {}
    warnings = [w for w in restore.get("warnings", []) if "optimizer" in w.lower()]
    in_file = restore.get("optimizer_included")
    evidence: dict[str, Any] = {
        "path": r.target,
        "format": restore.get("format"),
        "api": restore.get("api"),
        "steps_at_save": steps,
        "steps_after_restore": start,
        "measured_from": source,
        **r.parent_evidence(),
    }
    if in_file is not None:
        evidence["file_has_optimizer_state"] = in_file
    if "file_optimizer_variables" in restore:
        evidence["file_optimizer_variables"] = restore["file_optimizer_variables"]
    if opt:
        evidence["optimizer_after_restore"] = opt
    if warnings:
        evidence["warnings"] = warnings[:3]
    if in_file is False:
        hint = (
            "The file has no optimizer state. Save it with the model: `model.save('ckpt.keras')` (the "
            "optimizer is included by default; for .h5 do not pass include_optimizer=False), or a "
            "`tf.train.Checkpoint(model=model, optimizer=model.optimizer)`."
        )
    else:
        hint = (
            "The file holds the optimizer state but it was not loaded: `load_weights` into a model whose "
            "optimizer has not been built yet skips it. Build it first (`model.compile(...)`, then "
            "`model.optimizer.build(model.trainable_variables)`, then `model.load_weights(...)`), or resume "
            "with `keras.models.load_model('ckpt.keras')`, or restore a `tf.train.Checkpoint` that tracks "
            "the optimizer."
        )
    who = f"run {r.link.parent}" if r.by_hash and r.link is not None else "the file"
    return [
        finding(
            "optimizer_state_not_restored",
            "warning",
            f"Optimizer restarted from step 0 after restoring {os.path.basename(r.target)}; {who} was at step {steps}",
            evidence,
            hint + " A fresh Adam/RMSprop has no moment estimates and takes large early steps, which "
            "shows as a loss jump after the resume.",
            r.target,
            r.first_epoch,
        )
    ]


def _loss(epoch: Record) -> float | None:
    metrics = epoch.get("metrics")
    value = metrics.get("loss") if isinstance(metrics, dict) else None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, int | float):
        return math.inf
    return None


def check_loss_jump(r: Resume) -> list[Record]:
    if not r.by_hash or not r.child_epochs:
        return []
    child = _loss(r.child_epochs[0])
    parent = [v for v in (_loss(e) for e in r.parent_epochs) if v is not None and math.isfinite(v)]
    if child is None or not parent:
        return []
    last = parent[-1]
    recent = parent[-(WINDOW + 1) :]
    if len(recent) > 3:
        recent = recent[1:] if len(parent) == len(recent) else recent  # drop a first (warm-up) epoch
    diffs = [abs(b - a) for a, b in itertools.pairwise(recent)]
    scale = median(diffs) if diffs else 0.0
    threshold = max(LOSS_JUMP_SCALES * scale, LOSS_JUMP_MIN_FRACTION * abs(last), 1e-12)
    jump = child - last
    if jump <= threshold:
        return []
    severity = "critical" if (not math.isfinite(child) or jump > abs(last)) else "warning"
    evidence: dict[str, Any] = {
        "parent_last_loss": last,
        "first_loss_after_restore": child if math.isfinite(child) else "non-finite",
        "jump": jump if math.isfinite(jump) else "non-finite",
        "parent_typical_epoch_change": scale,
        "jump_in_typical_changes": round(jump / scale, 1) if scale > 0 and math.isfinite(jump) else None,
        "parent_losses": [round(v, 6) for v in parent[-5:]],
        **r.parent_evidence(),
    }
    val = (r.child_epochs[0].get("metrics") or {}).get("val_loss")
    if isinstance(val, int | float):
        evidence["first_val_loss_after_restore"] = val
    ratio = f"{child / last:.1f}x" if last > 0 and math.isfinite(child) else "far above"
    return [
        finding(
            "loss_jump_after_restore",
            severity,
            f"Loss jumped from {last:.4g} to {child:.4g} ({ratio}) in the first epoch after the restore",
            {k: v for k, v in evidence.items() if v is not None},
            "The resumed run is not continuing where its parent stopped. Look at the other restore "
            "findings of this run for the cause: optimizer state not restored, inputs scaled differently "
            "(input_distribution_shift), a changed learning rate, batch size or loss. Restore the full "
            "state (model.save/.keras + load_model, or tf.train.Checkpoint with the optimizer) and feed "
            "the inputs through the same preprocessing as the parent.",
            r.target,
            r.first_epoch,
        )
    ]


def _lr_value(fit: Record | None, epochs: Sequence[Record], last: bool) -> tuple[float | None, Any]:
    """(learning rate as a number, schedule config when the rate is a schedule)."""
    config = ((fit or {}).get("optimizer") or {}).get("config") or {}
    rate = config.get("learning_rate")
    if isinstance(rate, dict):
        pick = epochs[-1] if (epochs and last) else (epochs[0] if epochs else None)
        value = pick.get("lr") if pick else None
        return (float(value) if isinstance(value, int | float) else None), rate
    if isinstance(rate, int | float):
        return float(rate), None
    pick = epochs[-1] if (epochs and last) else (epochs[0] if epochs else None)
    value = pick.get("lr") if pick else None
    return (float(value) if isinstance(value, int | float) else None), None


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        scale = max(abs(a), abs(b), 1e-30)
        return abs(a - b) / scale > 1e-4
    return bool(a != b)


def check_hyperparameters(r: Resume) -> list[Record]:
    if not r.by_hash or r.child_fit is None or r.parent_fit is None:
        return []
    pf, cf = r.parent_fit, r.child_fit
    changes: list[dict[str, Any]] = []
    p_lr, p_sched = _lr_value(pf, r.parent_epochs, last=True)
    if r.parent_epochs and isinstance(r.parent_epochs[-1].get("lr"), int | float):
        p_lr = float(r.parent_epochs[-1]["lr"])  # the rate in force at the save, after schedules/callbacks
    c_lr, c_sched = _lr_value(cf, r.child_epochs, last=False)
    if p_sched is None and c_sched is None and p_lr is not None and c_lr is not None and _differs(p_lr, c_lr):
        changes.append({"what": "learning_rate", "parent": p_lr, "child": c_lr})
    if (p_sched is None) != (c_sched is None) or (p_sched is not None and p_sched != c_sched):
        changes.append(
            {"what": "learning_rate_schedule", "parent": p_sched or p_lr, "child": c_sched or c_lr}
        )
    if p_sched is not None and c_sched is not None:
        saved_steps = (r.save or {}).get("iterations")
        start, _src = _child_start_step(r)
        if isinstance(saved_steps, int) and start is not None and start != saved_steps:
            changes.append({"what": "schedule_position", "parent": saved_steps, "child": start})
    for key in ("batch_size", "loss"):
        if key in pf and key in cf and _differs(pf[key], cf[key]):
            changes.append({"what": key, "parent": pf[key], "child": cf[key]})
    p_opt, c_opt = pf.get("optimizer") or {}, cf.get("optimizer") or {}
    if p_opt.get("class") and c_opt.get("class") and p_opt["class"] != c_opt["class"]:
        changes.append({"what": "optimizer", "parent": p_opt["class"], "child": c_opt["class"]})
    else:
        p_cfg, c_cfg = p_opt.get("config") or {}, c_opt.get("config") or {}
        for key in sorted(set(p_cfg) | set(c_cfg)):
            if key in ("name", "learning_rate"):
                continue
            if key in p_cfg and key in c_cfg and _differs(p_cfg[key], c_cfg[key]):
                changes.append({"what": f"optimizer.{key}", "parent": p_cfg[key], "child": c_cfg[key]})
    if not changes:
        return []
    names = ", ".join(c["what"] for c in changes)
    return [
        finding(
            "hyperparameter_changed_after_restore",
            "warning",
            f"{'Ran' if r.compared else 'Resumed'} with different {names} than run "
            f"{r.link.parent if r.link else '?'} used",
            {"changes": changes, **r.parent_evidence()},
            "If the change is intended (fine-tuning, a new schedule), expect the curve to move and compare "
            "against this run, not the parent. If not, resume with the parent's settings: reuse its "
            "optimizer config and batch size (they are in the parent's fit_start record), and restore the "
            "optimizer state so a schedule continues from the saved step instead of step 0.",
            r.target,
            r.first_epoch,
        )
    ]


def _shifted_features(parent: dict[str, Any], child: dict[str, Any], group: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in sorted(set(parent) & set(child)):
        p, c = parent[name], child[name]
        if not isinstance(p, dict) or not isinstance(c, dict):
            continue
        label = group if name == group else f"{group}[{name}]"
        if p.get("shape") != c.get("shape") or p.get("dtype") != c.get("dtype"):
            out.append(
                {
                    "feature": label,
                    "change": "structure",
                    "parent": [p.get("dtype"), p.get("shape")],
                    "child": [c.get("dtype"), c.get("shape")],
                    "z": math.inf,
                }
            )
            continue
        pm, ps = p.get("mean") or [], p.get("std") or []
        cm, cs = c.get("mean") or [], c.get("std") or []
        if p.get("per") != c.get("per") or len(pm) != len(cm) or len(ps) != len(cs):
            continue
        for i, (mp, sp, mc, sc) in enumerate(zip(pm, ps, cm, cs, strict=False)):
            if not all(isinstance(v, int | float) for v in (mp, sp, mc, sc)):
                continue
            floor = 1e-6 * max(1.0, abs(mp))
            z = abs(mc - mp) / max(sp, floor)
            ratio = (sc / sp) if sp > floor else (math.inf if sc > floor else 1.0)
            if z >= SHIFT_Z or ratio >= SHIFT_STD_RATIO or ratio <= 1 / SHIFT_STD_RATIO:
                out.append(
                    {
                        "feature": f"{label}[{i}]" if len(pm) > 1 else label,
                        "parent_mean": mp,
                        "parent_std": sp,
                        "child_mean": mc,
                        "child_std": sc,
                        "z": round(z, 2),
                        "std_ratio": round(ratio, 3) if math.isfinite(ratio) else "inf",
                    }
                )
    return out


def _feature_count(groups: Any) -> int:
    n = 0
    for s in (groups or {}).values():
        if isinstance(s, dict):
            n += max(1, len(s.get("mean") or []))
    return n


def check_inputs(r: Resume) -> list[Record]:
    if not r.by_hash or r.child_fit is None or r.parent_fit is None:
        return []
    p, c = r.parent_fit.get("input_stats"), r.child_fit.get("input_stats")
    if not isinstance(p, dict) or not isinstance(c, dict) or p.get("skipped") or c.get("skipped"):
        return []
    shifted = _shifted_features(p.get("inputs") or {}, c.get("inputs") or {}, "x")
    targets = _shifted_features(p.get("targets") or {}, c.get("targets") or {}, "y")
    if not shifted and not targets:
        return []
    worst = sorted(shifted + targets, key=lambda f: -f["z"])
    n_inputs, n_targets = _feature_count(p.get("inputs")), _feature_count(p.get("targets"))
    strong = [f for f in shifted if f["z"] >= 10]
    severity = "critical" if shifted and len(strong) * 2 >= max(1, n_inputs) else "warning"
    for f in worst:
        if not math.isfinite(f["z"]):
            f["z"] = "inf"
    parts = []
    if shifted:
        parts.append(f"{len(shifted)} of {n_inputs} input features")
    if targets:
        parts.append(f"{len(targets)} of {n_targets} target columns")
    parent_id = r.link.parent if r.link else "?"
    return [
        finding(
            "input_distribution_shift",
            severity,
            f"{' and '.join(parts)} are distributed differently from run {parent_id}'s",
            {
                "shifted": worst[:6],
                "input_features": n_inputs,
                "shifted_inputs": len(shifted),
                "shifted_targets": len(targets),
                "parent_rows": p.get("rows"),
                "child_rows": c.get("rows"),
                **r.parent_evidence(),
            },
            "The model was trained on inputs scaled differently. Apply the parent's preprocessing again "
            "with the parent's statistics (not refitted on new data): persist the scaler next to the "
            "checkpoint, or put it inside the model (a keras.layers.Normalization layer adapted once on the "
            "training data is saved with the model).",
            r.target,
            r.first_epoch,
        )
    ]


def _version(text: Any) -> tuple[int, ...] | None:
    if not isinstance(text, str):
        return None
    parts = []
    for piece in text.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def _version_severity(a: tuple[int, ...], b: tuple[int, ...]) -> str | None:
    if a[:1] != b[:1]:
        return "critical"
    if a[:2] != b[:2]:
        return "warning"
    if a != b:
        return "info"
    return None


_RANK = {"info": 0, "warning": 1, "critical": 2}


def check_versions(r: Resume) -> list[Record]:
    env = (r.run.start or {}).get("env") or {}
    now = env.get("packages") or {}
    diffs: list[dict[str, Any]] = []
    written = r.restore.get("written_with") or {}
    for pkg, key in (("keras", "keras"), ("tensorflow", "tensorflow")):
        file_v, run_v = _version(written.get(key)), _version(now.get(pkg))
        if file_v and run_v:
            sev = _version_severity(file_v, run_v)
            if sev:
                diffs.append(
                    {
                        "package": pkg,
                        "source": "file",
                        "written_with": written[key],
                        "loaded_with": now[pkg],
                        "severity": sev,
                    }
                )
    backend = written.get("backend")
    if isinstance(backend, str) and now.get("tensorflow") and backend not in ("tensorflow", "tf"):
        diffs.append(
            {
                "package": "backend",
                "source": "file",
                "written_with": backend,
                "loaded_with": "tensorflow",
                "severity": "warning",
            }
        )
    if r.by_hash and r.parent is not None:
        before = (((r.parent.start or {}).get("env") or {}).get("packages")) or {}
        listed = {d["package"] for d in diffs}
        for pkg in ("keras", "tensorflow", "h5py"):
            if pkg in listed:
                continue
            pv, cv = _version(before.get(pkg)), _version(now.get(pkg))
            if pv and cv:
                sev = _version_severity(pv, cv)
                if sev:
                    diffs.append(
                        {
                            "package": pkg,
                            "source": "parent run",
                            "written_with": before[pkg],
                            "loaded_with": now[pkg],
                            "severity": sev,
                        }
                    )
    if not diffs:
        return []
    severity = max((d.pop("severity") for d in diffs), key=_RANK.__getitem__)
    names = ", ".join(f"{d['package']} {d['written_with']} -> {d['loaded_with']}" for d in diffs)
    return [
        finding(
            "version_mismatch",
            severity,
            (
                f"Ran with other versions than run {r.link.parent if r.link else '?'} ({names})"
                if r.compared
                else f"{os.path.basename(r.target)} was written with other versions than this run loads it "
                f"with ({names})"
            ),
            {"path": r.target, "differences": diffs, **r.parent_evidence()},
            "Loading across versions can silently change behaviour (renamed or re-ordered variables, "
            "skipped optimizer state, different defaults). Resume with the versions the checkpoint was "
            "written with (pin them, e.g. `pip install keras==<version>`), or if you must upgrade, load, "
            "check that the loss on a fixed batch matches, and save again with the new versions.",
            r.target,
            r.first_epoch,
        )
    ]


def _gpus(env: dict[str, Any]) -> list[str]:
    return sorted(str(g.get("name")) for g in env.get("gpus") or [] if isinstance(g, dict))


def check_environment(r: Resume) -> list[Record]:
    if not r.by_hash or r.parent is None:
        return []
    pe = (r.parent.start or {}).get("env") or {}
    ce = (r.run.start or {}).get("env") or {}
    if not pe or not ce:
        return []
    changes: list[dict[str, Any]] = []
    severity = "info"
    pg, cg = _gpus(pe), _gpus(ce)
    if pg != cg:
        changes.append({"what": "gpus", "parent": pg, "child": cg})
        severity = "warning"
    for key in ("driver", "python"):
        if key in pe and key in ce and pe[key] != ce[key]:
            changes.append({"what": key, "parent": pe[key], "child": ce[key]})
    for key in ("cpu_count", "cpu_affinity"):
        a, b = pe.get(key), ce.get(key)
        if isinstance(a, int) and isinstance(b, int) and a != b:
            changes.append({"what": key, "parent": a, "child": b})
            if b * 2 <= a:
                severity = "warning"
    pb, cb = pe.get("tf_build") or {}, ce.get("tf_build") or {}
    for key in ("cuda_version", "cudnn_version"):
        if key in pb and key in cb and pb[key] != cb[key]:
            changes.append({"what": f"tf_build.{key}", "parent": pb[key], "child": cb[key]})
    if not changes:
        return []
    if pe.get("hostname") != ce.get("hostname"):
        changes.append({"what": "hostname", "parent": pe.get("hostname"), "child": ce.get("hostname")})
    names = ", ".join(c["what"] for c in changes if c["what"] != "hostname")
    return [
        finding(
            "environment_changed",
            severity,
            f"{'Ran' if r.compared else 'Resumed'} on a different machine setup than run "
            f"{r.link.parent if r.link else '?'} ({names})",
            {"changes": changes, **r.parent_evidence()},
            "Epoch times and numerics are only comparable on the same hardware and software. If the "
            "resumed run is slower or its loss differs, check these first; pin the job to the same GPU "
            "type and driver (node selector / partition), and the same CPU allocation.",
            r.target,
            r.first_epoch,
        )
    ]


def check_slow_restore(r: Resume) -> list[Record]:
    seconds, size = r.restore.get("load_seconds"), r.restore.get("bytes")
    fmt = str(r.restore.get("format"))
    if not isinstance(seconds, int | float) or not isinstance(size, int) or fmt not in EXPECTED_LOAD:
        return []
    fixed, rate = EXPECTED_LOAD[fmt]
    expected = fixed + size / rate
    if seconds < SLOW_RESTORE_MIN_SECONDS or seconds < SLOW_RESTORE_FACTOR * expected:
        return []
    evidence: dict[str, Any] = {
        "path": r.target,
        "format": fmt,
        "bytes": size,
        "load_seconds": seconds,
        "mb_per_second": round(size / seconds / 1e6, 1) if seconds else None,
        "expected_seconds": round(expected, 2),
    }
    if r.save is not None and isinstance(r.save.get("save_seconds"), int | float):
        evidence["parent_save_seconds"] = r.save["save_seconds"]
    format_hint = {
        "keras": "A .keras load unzips the archive, rebuilds and compiles the model before reading "
        "weights; for frequent resumes a `.weights.h5` into an already built model, or a "
        "tf.train.Checkpoint, skips the rebuild.",
        "h5": "Legacy .h5 loads rebuild the model from its config; prefer .weights.h5 or a tf.train.Checkpoint.",
        "saved_model": "tf.saved_model.load restores every traced function as well as the variables; to "
        "resume training, a tf.train.Checkpoint of the model and optimizer loads only the variables.",
    }.get(fmt, "")
    return [
        finding(
            "slow_restore",
            "warning" if seconds >= 10 * expected else "info",
            f"Restoring {os.path.basename(r.target)} took {seconds:.1f} s for {size / 1e6:.0f} MB "
            f"(about {expected:.1f} s expected for {fmt})",
            evidence,
            "Check where the file lives: a network or object-store mount, or a cold cache, makes restores "
            "slow; copy it to local disk first. " + format_hint,
            r.target,
            r.first_epoch,
        )
    ]


def _per_sample_seconds(epoch: Record) -> float | None:
    seconds, steps = epoch.get("seconds"), epoch.get("steps")
    if not isinstance(seconds, int | float) or not isinstance(steps, int) or steps <= 0:
        return None
    val = epoch.get("val_seconds")
    val = float(val) if isinstance(val, int | float) else 0.0
    batch = epoch.get("batch_size")
    batch = batch if isinstance(batch, int) and batch > 0 else 1
    return (float(seconds) - val) / steps / batch


def _steady(epochs: Sequence[Record]) -> list[Record]:
    """Epochs past warm-up: the first epoch of each fit (tracing, compiling) is left out."""
    seen: set[Any] = set()
    out = []
    for e in epochs:
        key = e.get("fit")
        if key not in seen:
            seen.add(key)
            continue
        out.append(e)
    return out


def check_slowdown(r: Resume) -> list[Record]:
    if not r.by_hash:
        return []
    parent = _steady(r.parent_epochs)[-WINDOW:]
    child = _steady(r.child_epochs)[:WINDOW]
    p = [v for v in map(_per_sample_seconds, parent) if v is not None]
    c = [v for v in map(_per_sample_seconds, child) if v is not None]
    if len(p) < 2 or len(c) < 2:
        return []
    pm, cm = median(p), median(c)
    if pm <= 0 or cm / pm < SLOWDOWN_RATIO:
        return []
    child_epoch_seconds = median(
        float(e["seconds"]) for e in child if isinstance(e.get("seconds"), int | float)
    )
    parent_epoch_seconds = median(
        float(e["seconds"]) for e in parent if isinstance(e.get("seconds"), int | float)
    )
    samples = median((e.get("steps") or 0) * (e.get("batch_size") or 1) for e in child)
    if (cm - pm) * samples < SLOWDOWN_MIN_SECONDS:
        return []
    evidence: dict[str, Any] = {
        "parent_seconds_per_sample": pm,
        "child_seconds_per_sample": cm,
        "ratio": round(cm / pm, 2),
        "parent_epoch_seconds": parent_epoch_seconds,
        "child_epoch_seconds": child_epoch_seconds,
        "parent_epochs": [e.get("epoch") for e in parent],
        "child_epochs": [e.get("epoch") for e in child],
        **r.parent_evidence(),
    }
    retr_p = sum(((e.get("retraces") or {}).get("new") or 0) for e in parent)
    retr_c = sum(((e.get("retraces") or {}).get("new") or 0) for e in child)
    if retr_c > retr_p:
        evidence["retraces_after_warmup"] = {"parent": retr_p, "child": retr_c}
    pin = ((r.parent_fit or {}).get("input") or {}).get("kind")
    cin = ((r.child_fit or {}).get("input") or {}).get("kind")
    if pin and cin and pin != cin:
        evidence["input_kind"] = {"parent": pin, "child": cin}
    pbs, cbs = (r.parent_fit or {}).get("batch_size"), (r.child_fit or {}).get("batch_size")
    if pbs and cbs and pbs != cbs:
        evidence["batch_size"] = {"parent": pbs, "child": cbs}
    pe, ce = (r.parent.start or {}).get("env", {}) if r.parent else {}, (r.run.start or {}).get("env", {})
    for key in ("cpu_count", "hostname"):
        if pe.get(key) != ce.get(key):
            evidence[key] = {"parent": pe.get(key), "child": ce.get(key)}
    if _gpus(pe) != _gpus(ce):
        evidence["gpus"] = {"parent": _gpus(pe), "child": _gpus(ce)}
    title = (
        f"Epochs{'' if r.compared else ' after the restore'} are {cm / pm:.1f}x slower per sample than run "
        f"{r.link.parent if r.link else '?'}'s steady state"
    )
    hint = (
        "Compare what differs (listed in the evidence): new tf.function retraces after warm-up "
        "(inputs with changing shapes or Python values), a different input pipeline, batch size or "
        "machine. If none differ, the checkpoint's host may have had warm caches: check the input "
        "pipeline (prefetch, cache) and the disk the data is read from."
    )
    inputs = input_difference(r.parent_fit, parent, r.child_fit, child)  # analysis/input_compare.py
    if inputs is not None:
        evidence["input"] = {k: v for k, v in inputs.items() if k not in ("explains", "summary")}
        if inputs["explains"]:
            title += f": {inputs['summary']}"
            hint = INPUT_HINT
    return [finding("restore_slowdown", "warning", title, evidence, hint, r.target, r.first_epoch)]


CHECKS: tuple[Callable[[Resume], list[Record]], ...] = (
    check_modified,
    check_optimizer,
    check_loss_jump,
    check_hyperparameters,
    check_inputs,
    check_versions,
    check_environment,
    check_slow_restore,
    check_slowdown,
)


def _detect_view(view: Any) -> list[Finding]:
    """The registry's entry point: a RunView (with `.lineage` when the report has one)."""
    return [Finding(**f) for f in detect(view.run, view)]


# replay=False: judged on the run as it is (the restore, and the epochs after it), once
# offline; the online engine runs it after every epoch, which is what a resumed run needs.
DETECTOR = Detector("restore", _detect_view, persistence=1, replay=False)


# Checks that still mean something between two runs where neither restored the other.
COMPARE_CHECKS: tuple[Callable[[Resume], list[Record]], ...] = (
    check_hyperparameters,
    check_inputs,
    check_versions,
    check_environment,
    check_slowdown,
)


def compare_findings(base: Run, new: Run) -> list[Record]:
    """What `new` implies against `base` (`epochwatch compare`).

    If `new` restored a save of `base`, these are the restore findings of that link. If not,
    `new` is judged as if it continued `base`: settings, inputs, versions, machine and speed
    (never the loss jump or the optimizer, which need a real resume).
    """
    lineage = build_lineage([base, new])
    linked = [r for r in resumes(new, lineage) if r.link is not None and r.link.parent == base.run_id]
    if linked:
        return [f for r in linked for check in CHECKS for f in check(r)]
    pseudo: Record = {"path": f"run {new.run_id}", "restored_at": _ts(new.start or {}, "t")}
    save: Record = {"saved_at": math.inf}
    link = Link(new.run_id, base.run_id, pseudo, save, MATCH_SHA256)
    r = Resume(new, pseudo, base, link, compared=True)
    r.child_fit = new.fits[0] if new.fits else None
    r.child_epochs = list(new.epochs[: WINDOW + 2])
    r.parent_fit = base.fits[-1] if base.fits else None
    r.parent_epochs = list(base.epochs)
    return [f for check in COMPARE_CHECKS for f in check(r)]
