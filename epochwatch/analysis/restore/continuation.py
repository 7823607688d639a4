"""Checks on the epochs after the restore against the parent's before the save.

- `loss_jump_after_restore`: the first epoch's loss against the parent's last, in units of
  the parent's own epoch-to-epoch variation.
- `restore_slowdown`: post-restore epochs slower than the parent's steady state.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from statistics import median
from typing import Any

from epochwatch.analysis import frameworks
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.input_compare import INPUT_HINT, input_difference
from epochwatch.analysis.restore.lineage import restored_at, timestamp
from epochwatch.analysis.restore.machine import gpu_names
from epochwatch.analysis.restore.resume import WINDOW, Resume

Record = dict[str, Any]

# loss jump: the jump must exceed this many "typical" parent epoch-to-epoch changes ...
LOSS_JUMP_SCALES = 4.0
# ... and this fraction of the parent's last loss (a plateaued curve has tiny changes).
LOSS_JUMP_MIN_FRACTION = 0.10
# restore slowdown: post-warm-up epochs this much slower per sample, and by at least this
# many seconds per epoch (epochs of a tenth of a second are all noise).
SLOWDOWN_RATIO = 1.5
SLOWDOWN_MIN_SECONDS = 1.0


def loss_of(epoch: Record) -> float | None:
    metrics = epoch.get("metrics")
    value = metrics.get("loss") if isinstance(metrics, dict) else None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, int | float):
        return math.inf
    return None


def loss_jump(before: Sequence[Record], after: Sequence[Record]) -> tuple[float, float, float, float] | None:
    """(last loss before, first loss after, jump, typical epoch-to-epoch change before) when
    the first epoch after a restore jumped above the last before it beyond the noise (in units
    of the epochs before's own changes, and 10% of the loss); None: no jump, or no losses."""
    child = loss_of(after[0]) if after else None
    parent = [v for v in (loss_of(e) for e in before) if v is not None and math.isfinite(v)]
    if child is None or not parent:
        return None
    last = parent[-1]
    recent = parent[-(WINDOW + 1) :]
    if len(recent) > 3:
        recent = recent[1:] if len(parent) == len(recent) else recent  # drop a first (warm-up) epoch
    diffs = [abs(b - a) for a, b in itertools.pairwise(recent)]
    scale = median(diffs) if diffs else 0.0
    threshold = max(LOSS_JUMP_SCALES * scale, LOSS_JUMP_MIN_FRACTION * abs(last), 1e-12)
    jump = child - last
    return (last, child, jump, scale) if jump > threshold else None


def rates(r: Resume) -> tuple[float, float] | None:
    """(the learning rate in force at the save, the rate of the first epoch after the
    restore), where both were recorded and differ: the parent's last epoch's `lr` is the
    rate after its callbacks and schedules (a ReduceLROnPlateau's 6.4e-07), not its
    fit_start's (the 0.01 it began with)."""
    before = r.parent_epochs[-1].get("lr") if r.parent_epochs else None
    after = r.child_epochs[0].get("lr") if r.child_epochs else None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (before, after)):
        return None
    before, after = float(before), float(after)  # type: ignore[arg-type]
    return (before, after) if abs(before - after) > 1e-4 * max(abs(before), abs(after), 1e-30) else None


def consequence(r: Resume, evidence: dict[str, Any]) -> tuple[str, str] | None:
    """Severity by consequence: a warning when the loss jumped in the first epoch after the
    restore (or the trace cannot tell), info with the losses said when it did not; None
    before that epoch ended (the hook checks at the fit's start too: it says nothing until
    it can say what `report` will)."""
    if not r.child_epochs:
        return None
    when = restored_at(r.restore)
    before = r.parent_epochs or [e for e in r.run.epochs if timestamp(e, "start") < when - 1e-3]
    after = r.child_epochs
    last = next((loss_of(e) for e in reversed(before) if loss_of(e) is not None), None)
    first = loss_of(after[0]) if after else None
    if last is None or first is None:
        return "warning", ""
    jumped = loss_jump(before, after)
    evidence["loss_before_restore"], evidence["first_loss_after_restore"] = last, first
    if jumped is not None:
        return "warning", f"; the loss jumped {last:.4g} -> {first:.4g}"
    return "info", f"; no loss jump followed ({last:.4g} -> {first:.4g})"


def check_loss_jump(r: Resume) -> list[Finding]:
    if not r.by_hash or not r.child_epochs:
        return []
    jumped = loss_jump(r.parent_epochs, r.child_epochs)
    if jumped is None:
        return []
    last, child, jump, scale = jumped
    parent = [v for v in (loss_of(e) for e in r.parent_epochs) if v is not None and math.isfinite(v)]
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
        Finding(
            "loss_jump_after_restore",
            severity,
            f"Loss jumped from {last:.4g} to {child:.4g} ({ratio}) in the first epoch after the restore",
            {k: v for k, v in evidence.items() if v is not None},
            frameworks.hint(
                "loss_jump_after_restore",
                frameworks.framework(r.run.start),
                "The resumed run is not continuing where its parent stopped. Look at the other restore "
                "findings of this run for the cause: optimizer state not restored, inputs scaled differently "
                "(input_distribution_shift), a changed learning rate, batch size or loss. Restore the full "
                "state (model.save/.keras + load_model, or tf.train.Checkpoint with the optimizer) and feed "
                "the inputs through the same preprocessing as the parent.",
            ),
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
        if e.get("fit") in seen:
            out.append(e)
        seen.add(e.get("fit"))
    return out


def check_slowdown(r: Resume) -> list[Finding]:
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
    parent_epoch_seconds, child_epoch_seconds = (
        median(float(e["seconds"]) for e in epochs if isinstance(e.get("seconds"), int | float))
        for epochs in (parent, child)
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
    if gpu_names(pe) != gpu_names(ce):
        evidence["gpus"] = {"parent": gpu_names(pe), "child": gpu_names(ce)}
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
    inputs = input_difference(r.parent_fit, parent, r.child_fit, child)
    if inputs is not None:
        evidence["input"] = {k: v for k, v in inputs.items() if k not in ("explains", "summary")}
        if inputs["explains"]:
            title += f": {inputs['summary']}"
            hint = INPUT_HINT
    return [Finding("restore_slowdown", "warning", title, evidence, hint, r.target, r.first_epoch)]
