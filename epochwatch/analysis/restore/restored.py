"""Checks on what was restored: the file itself, the optimizer state in it, how long it took.

- `checkpoint_modified`: the bytes restored are not the bytes last saved at that path.
- `optimizer_state_not_restored`: a fresh optimizer (step 0) where the parent or the file
  had taken N steps.
- `slow_restore`: load time against file size, with the format's expected cost.
"""

from __future__ import annotations

import os
from typing import Any

from epochwatch.analysis import frameworks
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.restore.continuation import consequence, rates
from epochwatch.analysis.restore.lineage import MATCH_PATH, restored_at, saved_at
from epochwatch.analysis.restore.resume import Resume
from epochwatch.analysis.run import model_int

# slow restore: (fixed seconds, bytes per second) a healthy local load of each format takes.
EXPECTED_LOAD = {
    "keras": (1.0, 200e6),  # unzip, rebuild and compile the model, read HDF5 in the zip
    "h5": (1.0, 200e6),
    "weights.h5": (0.3, 300e6),
    "tf_checkpoint": (0.3, 500e6),
    "saved_model": (3.0, 200e6),  # restores concrete functions too
    "torch": (0.3, 500e6),  # torch.load of a state-dict checkpoint (zip of tensors)
}
SLOW_RESTORE_FACTOR = 3.0
SLOW_RESTORE_MIN_SECONDS = 5.0


def check_modified(r: Resume) -> list[Finding]:
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
        Finding(
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


def check_optimizer(r: Resume) -> list[Finding]:
    restore = r.restore
    saved_steps = None
    if r.by_hash and r.save is not None and isinstance(r.save.get("iterations"), int):
        saved_steps = r.save["iterations"]
    file_steps = restore.get("file_iterations") if isinstance(restore.get("file_iterations"), int) else None
    steps = max((s for s in (saved_steps, file_steps) if s is not None), default=None)
    if steps:
        start, source = r.child_start_step()
    elif _no_optimizer_state(restore) and (steps := _parent_updates(r)):
        # A checkpoint of the model alone (tf.train.Checkpoint(model=model)): no step counter
        # on either side, but the parent's updates are in its trace, and nothing in the file
        # could have restored an optimizer (tensorflow#44867's shape: Adam back at 0, the
        # first loss after the resume +64%).
        start, source = 0, "the file holds no optimizer state"
    else:
        return []
    if start is None or start > 0:
        return []
    got = restore.get("optimizer")
    opt: dict[str, Any] = got if isinstance(got, dict) else {}
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
    replaced = isinstance(opt.get("iterations"), int) and opt["iterations"] >= steps  # loaded, then replaced
    if replaced:
        hint = _replaced_hint(r)
    elif in_file is False:
        hint = (
            "The file has no optimizer state. Save it with the model: `model.save('ckpt.keras')` (the "
            "optimizer is included by default; for .h5 do not pass include_optimizer=False), or a "
            "`tf.train.Checkpoint(model=model, optimizer=model.optimizer)`."
        )
    elif "load_model" in str(restore.get("api")):
        hint = (
            "The file holds the optimizer state but the loaded model's optimizer starts from step 0: "
            "load it with `keras.models.load_model(path)` (compile=True, the default) and train that "
            "model, without compiling it again (a new `compile` makes a new optimizer)."
        )
    else:
        hint = (
            "The file holds the optimizer state but it was not loaded: `load_weights` into a model whose "
            "optimizer has not been built yet skips it. Build it first (`model.compile(...)`, then "
            "`model.optimizer.build(model.trainable_variables)`, then `model.load_weights(...)`), or resume "
            "with `keras.models.load_model('ckpt.keras')`, or restore a `tf.train.Checkpoint` that tracks "
            "the optimizer."
        )
    hint = frameworks.hint("optimizer_state_not_restored", frameworks.framework(r.run.start), hint)
    who = f"run {r.link.parent}" if r.by_hash and r.link is not None else "the file"
    title = f"Optimizer restarted from step 0 after restoring {os.path.basename(r.target)}; {who} was at step {steps}"
    if replaced:
        evidence["replaced_after_restore"] = True
        title = (
            f"Optimizer restarted from step 0: restoring {os.path.basename(r.target)} loaded it at step "
            f"{steps}, then compile() made a new one"
        )
    rate = rates(r)
    if rate is not None:  # the rate is optimizer state: it went back with the rest
        evidence["learning_rate"] = {"at_save": rate[0], "after_restore": rate[1]}
        title += f"; the learning rate with it: {rate[0]:.3g} at the save, {rate[1]:.3g} after"
    judged = consequence(r, evidence)
    if judged is None:
        return []
    severity, said = judged
    refit = _fine_tuning(r) if replaced or not in_file else {}  # a new optimizer where one was needed
    if refit:
        if severity == "info":
            return []  # a new optimizer the new training needs, and nothing came of it
        evidence.update(refit)
        hint = _fine_tuning_hint(refit)
    return [
        Finding(
            "optimizer_state_not_restored",
            severity,
            title + said,
            evidence,
            hint + " A fresh Adam/RMSprop has no moment estimates and takes large early steps, which "
            "shows as a loss jump after the resume.",
            r.target,
            r.first_epoch,
        )
    ]


def _no_optimizer_state(restore: dict[str, Any]) -> bool:
    return restore.get("optimizer_included") is False or restore.get("file_optimizer_variables") == 0


def _parent_updates(r: Resume) -> int:
    """The optimizer updates the parent made before its save, from its trace: its epochs'
    step counter (`iterations`, a Keras fit's), else the steps of its automatic epochs (a
    custom loop's, which are its optimizer's updates); 0 when neither, or no parent."""
    if not r.by_hash:
        return 0
    counters = [e["iterations"] for e in r.parent_epochs if isinstance(e.get("iterations"), int)]
    if counters:
        return max(counters)
    return sum(
        e["steps"]
        for e in r.parent_epochs
        if e.get("source") == "auto"
        and isinstance(e.get("steps"), int)
        and not isinstance(e.get("steps"), bool)
    )


def _fine_tuning(r: Resume) -> dict[str, Any]:
    """What makes the compile after a restore a new training rather than a resume: other
    trainable weights than the parent's fit had (layers unfrozen for fine-tuning: Keras
    needs that compile, and the restored optimizer has no slots for the weights it never
    trained), with the optimizer class where that changed too. {} otherwise: another class
    alone is no proof (keras#2378 compiled a new RMSprop after load_weights and wanted
    its training to go on)."""
    fit = r.child_fit if isinstance(r.child_fit, dict) else {}
    before, after = (model_int(f, "trainable_params") for f in (r.parent_fit, fit))
    if before is None or after is None or before == after:
        return {}
    out: dict[str, Any] = {"trainable_params_changed": [before, after]}
    restored = r.restore.get("optimizer")
    was = restored.get("class") if isinstance(restored, dict) else None
    now = (fit.get("optimizer") or {}).get("class") if isinstance(fit.get("optimizer"), dict) else None
    if isinstance(was, str) and isinstance(now, str) and was != now:
        out["optimizer_changed"] = [was, now]
    return out


# What a Keras load says of weights it skipped (`skip_mismatch=True`, `by_name=True`): Keras 3
# "A total of N objects could not be loaded", tf_keras "Skipping loading weights for layer".
_SKIPPED = ("could not be loaded", "skipping loading", "skip_mismatch")


def model_changed(r: Resume) -> bool:
    """The restore went into another model than the parent trained (transfer learning: a
    new head for a new task, `load_weights(..., skip_mismatch=True)`): its parameters differ
    in number, or the load skipped weights. tensorflow#44842's fine-tune on a 5-class head
    read as a failed resume: critical "loss jumped 5.1x" (a new head on a new task starts
    near ln 5), "optimizer restarted", "learning_rate changed" (all three by design).
    Unfrozen layers alone (the same parameters, more of them trainable) are still a resume."""
    before, after = (model_int(f, "params") for f in (r.parent_fit, r.child_fit))
    if before is not None and after is not None and before != after:
        return True
    warnings = r.restore.get("warnings")
    return isinstance(warnings, list) and any(
        isinstance(w, str) and any(s in w.lower() for s in _SKIPPED) for w in warnings
    )


def _fine_tuning_hint(refit: dict[str, Any]) -> str:
    before, after = refit["trainable_params_changed"]
    what = [f"the trainable weights changed ({before:,} -> {after:,} parameters)"]
    if "optimizer_changed" in refit:
        what.append(f"the optimizer is a new {refit['optimizer_changed'][1]}")
    return (
        f"This restore starts a new training ({' and '.join(what)}): the compile after it is needed, and "
        "a new optimizer is expected. Its first steps moved the loss: lower its learning rate for the "
        "first epochs (a warm-up), or keep the layers frozen for an epoch or two before unfreezing them."
    )


def _replaced_hint(r: Resume) -> str:
    opt = ((r.child_fit or {}).get("optimizer") or {}) if isinstance(r.child_fit, dict) else {}
    rate = (opt.get("config") or {}).get("learning_rate")
    new = f" ({opt.get('class')}, learning_rate {rate:.3g})" if isinstance(rate, int | float) else ""
    return (
        f"The restore loaded the optimizer state, and the `compile` after it replaced it with a new "
        f"optimizer{new}. If starting the optimizer afresh is intended, nothing is wrong; to keep its moment "
        "estimates and change only the learning rate, skip that compile and set "
        "`model.optimizer.learning_rate = ...` on the restored one."
    )


def check_slow_restore(r: Resume) -> list[Finding]:
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
        Finding(
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
