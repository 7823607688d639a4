"""Growth toward a limit: the projection and the severity rule shared by the leak detectors.

A leak matters by when it hits its limit (the cgroup memory limit or physical memory,
the GPU's memory, the free space of a disk), so leaks are ranked by projected time to
the limit. The rule, also in docs/findings.md:

- critical: the limit is reached before the planned end of training (Keras `epochs`),
  or, when the plan is unknown, within CRITICAL_EPOCHS epochs;
- info: the limit is more than FAR_EPOCHS epochs and FAR_SECONDS away (slow growth);
- warning: everything else, and growth with no known limit.
"""

from __future__ import annotations

import math
from typing import Any

from epochwatch.analysis.findings import CRITICAL, INFO, WARNING
from epochwatch.analysis.trend import Growth
from epochwatch.analysis.units import fmt_duration
from epochwatch.analysis.view import RunAtEpoch, Window, window_epochs

CRITICAL_EPOCHS = 50
FAR_EPOCHS = 10_000
FAR_SECONDS = 7 * 86400


def projection(view: RunAtEpoch, level: float, limit: float, slope: float) -> dict[str, Any]:
    """Epochs (and seconds, from recent epoch times) until `level` growing by `slope`
    per epoch reaches `limit`; empty when there is no limit or no growth."""
    if view.unit != "epoch":  # a slope per interval: per epoch, where the fit says how many
        ratio = view.points_per_epoch()
        if ratio != ratio:
            return {}
        slope *= ratio
    if not (limit == limit and limit > 0 and slope > 0 and level == level):
        return {}
    epochs = max(0.0, (limit - level) / slope)
    out: dict[str, Any] = {"limit": limit, "epochs_to_limit": round(epochs, 1)}
    per_epoch = view.epoch_seconds()
    if per_epoch == per_epoch and per_epoch > 0:
        out["seconds_to_limit"] = round(epochs * per_epoch, 1)
    left = view.epochs_left()
    if left is not None:
        out["epochs_left_in_plan"] = left
    return out


def severity(proj: dict[str, Any]) -> str:
    epochs = proj.get("epochs_to_limit")
    if epochs is None:
        return WARNING
    left = proj.get("epochs_left_in_plan")
    if (left is not None and epochs <= left) or (left is None and epochs <= CRITICAL_EPOCHS):
        return CRITICAL
    seconds = proj.get("seconds_to_limit", math.inf)
    if epochs > FAR_EPOCHS and seconds > FAR_SECONDS:
        return INFO
    return WARNING


def when_text(proj: dict[str, Any]) -> str:
    """'in about 40 epochs (2.1 h)' or '' without a projection."""
    epochs = proj.get("epochs_to_limit")
    if epochs is None:
        return ""
    text = f"in about {epochs:.0f} epochs"
    if "seconds_to_limit" in proj:
        text += f" ({fmt_duration(proj['seconds_to_limit'])})"
    return text


def growth_evidence(view: RunAtEpoch, g: Growth, w: Window) -> dict[str, Any]:
    """The numbers every growth finding quotes."""
    out = {
        "slope_per_epoch": g.slope,
        "slope_ci95": [g.slope_low, g.slope_high],
        "relative_slope_per_epoch": g.rel_slope,
        "p_value": g.p_value,
        "lag1_autocorrelation": g.rho1,
        "epochs": window_epochs(view, w.indexes),
        "points": g.n,
        "start": g.start,
        "now": g.now,
        "baseline": g.baseline,
    }
    if view.unit != "epoch":
        # Judged on sub-epoch intervals: the slope is per interval, the epochs are those
        # the window's intervals belong to.
        out["unit"] = view.unit
        out["slope_per_interval"] = g.slope
        ratio = view.points_per_epoch()
        out["slope_per_epoch"] = g.slope * ratio if ratio == ratio else None
        out["intervals_per_epoch"] = ratio if ratio == ratio else None
    return out
