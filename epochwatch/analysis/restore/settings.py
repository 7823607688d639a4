"""Checks on what the child trained with: its settings and its inputs, against the parent's.

- `hyperparameter_changed_after_restore`: learning rate, schedule position, batch size,
  optimizer class/config, loss.
- `input_distribution_shift`: the child's input statistics far from the parent's (the
  scaler that was not reapplied).
"""

from __future__ import annotations

import math
from typing import Any

from epochwatch.analysis.findings import Finding
from epochwatch.analysis.restore.continuation import consequence
from epochwatch.analysis.restore.restored import check_optimizer
from epochwatch.analysis.restore.resume import Resume

Record = dict[str, Any]

# input shift: |mean change| in parent standard deviations, or std ratio beyond this factor.
SHIFT_Z = 3.0
SHIFT_STD_RATIO = 3.0


def _lr_value(fit: Record | None, epoch: Record | None) -> tuple[float | None, Any]:
    """(the learning rate `epoch` ran at, else the optimizer's number; the schedule config
    when the rate is a schedule). The epoch's `lr` wins: the parent's last one is the rate in
    force at the save, after schedules and callbacks; the child's first is what its first
    epoch ran at, which a LearningRateScheduler sets at the epoch's start, after fit_start
    recorded the restored optimizer's (keras#1872)."""
    rate = (((fit or {}).get("optimizer") or {}).get("config") or {}).get("learning_rate")
    value = epoch.get("lr") if epoch else None
    number = value if isinstance(value, int | float) else rate if isinstance(rate, int | float) else None
    return (None if number is None else float(number)), (rate if isinstance(rate, dict) else None)


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        scale = max(abs(a), abs(b), 1e-30)
        return abs(a - b) / scale > 1e-4
    return bool(a != b)


def check_hyperparameters(r: Resume) -> list[Finding]:
    if not r.by_hash or r.child_fit is None or r.parent_fit is None:
        return []
    pf, cf = r.parent_fit, r.child_fit
    changes: list[dict[str, Any]] = []
    p_lr, p_sched = _lr_value(pf, r.parent_epochs[-1] if r.parent_epochs else None)
    c_lr, c_sched = _lr_value(cf, r.child_epochs[0] if r.child_epochs else None)
    if p_sched is None and c_sched is None and p_lr is not None and c_lr is not None and _differs(p_lr, c_lr):
        changes.append({"what": "learning_rate", "parent": p_lr, "child": c_lr})
    if (p_sched is None) != (c_sched is None) or (p_sched is not None and p_sched != c_sched):
        changes.append(
            {"what": "learning_rate_schedule", "parent": p_sched or p_lr, "child": c_sched or c_lr}
        )
    if p_sched is not None and c_sched is not None:
        saved_steps = (r.save or {}).get("iterations")
        start, _src = r.child_start_step()
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
    if all(c["what"] == "learning_rate" for c in changes) and check_optimizer(r):
        return []  # the rate went back with the optimizer's state: optimizer_state_not_restored says both
    names = ", ".join(f"{c['what']} {_shown(c['parent'])} -> {_shown(c['child'])}" for c in changes)
    evidence: dict[str, Any] = {"changes": changes, **r.parent_evidence()}
    judged = ("warning", "") if r.compared else consequence(r, evidence)
    if judged is None:
        return []
    severity, said = judged
    hint = (
        "If the change is intended (fine-tuning, a new schedule), expect the curve to move and compare "
        "against this run, not the parent. If not, resume with the parent's settings at its save: "
        + "; ".join(f"{c['what']} {_shown(c['parent'])}" for c in changes)
    )
    if any(c["what"] in ("learning_rate_schedule", "schedule_position") for c in changes):
        hint += (
            ", and restore the optimizer state so a schedule continues from the saved step instead of step 0"
        )
    restarted = _schedule_restarted(r)
    if restarted is not None and any(c["what"] == "learning_rate" for c in changes):
        evidence["parent_epochs"] = restarted
        hint = (
            f"the resumed fit counts its epochs from 0 again (initial_epoch=0 after {restarted} epochs) "
            "and its LearningRateScheduler sets the rate by that count: it put the rate of epoch 0 back; "
            f"pass initial_epoch={restarted} to fit() (and epochs= the total) so the schedule goes on where "
            "it stopped. " + hint
        )
    return [
        Finding(
            "hyperparameter_changed_after_restore",
            severity,
            f"{'Ran' if r.compared else 'Resumed'} with different {names} than run "
            f"{r.link.parent if r.link else '?'} used{said}",
            evidence,
            hint + ".",
            r.target,
            r.first_epoch,
        )
    ]


def _schedule_restarted(r: Resume) -> int | None:
    """The parent's epochs, where the resumed fit started its count at 0 again under a
    LearningRateScheduler (a schedule by epoch number starts over); else None."""
    cf = r.child_fit or {}
    callbacks = cf.get("callbacks")
    if (
        cf.get("initial_epoch") != 0
        or not isinstance(callbacks, list)
        or "LearningRateScheduler" not in callbacks
    ):
        return None
    last = r.parent_epochs[-1].get("epoch") if r.parent_epochs else None
    return last + 1 if isinstance(last, int) and not isinstance(last, bool) and last >= 0 else None


def _shown(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)[:40]


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


def check_inputs(r: Resume) -> list[Finding]:
    """The inputs after the restore against the parent's: a fit's, or with no fit, what the
    restored model served first (keras#13864: a model trained on scaled inputs, loaded and
    fed raw ones, MSE 37,000 against 0.004: nothing was said without a fit)."""
    if not r.by_hash or r.parent_fit is None:
        return []
    p = r.parent_fit.get("input_stats")
    c = r.child_fit.get("input_stats") if r.child_fit is not None else r.child_inputs
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
        Finding(
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
