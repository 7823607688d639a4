"""Growth toward a limit: the projection and the severity rule shared by the leak detectors.

Severity follows consequence within the run's horizon (also in docs/findings.md). The
horizon is what is left of the plan where it is known (Keras `epochs`); for open-ended
runs (custom loops, loops of fits) it is as long again as the series has run so far:
"if it goes on as long as it went". Then:

- critical: the limit (cgroup memory limit or physical memory, the GPU's memory, the free
  space of a disk) is reached before the planned end, or, when the plan is unknown,
  within CRITICAL_POINTS epochs (fits): that close, a limit is a consequence anyway;
- warning: the limit is reached within the horizon, or by its end the series would have
  grown by at least LARGE_SHARE of where it started (the process by half);
- info: everything else that is statistically real, said with its consequence.
"""

from __future__ import annotations

import math
from typing import Any

from epochwatch.analysis.findings import CRITICAL, INFO, WARNING
from epochwatch.analysis.trend import Growth
from epochwatch.analysis.units import fmt_bytes, fmt_duration
from epochwatch.analysis.view import RunAtEpoch, Window, window_epochs, window_fits

CRITICAL_POINTS = 50
LARGE_SHARE = 0.5


def horizon(view: RunAtEpoch, ratio: float | None = None) -> tuple[float, str]:
    """Points of this view's series still to come in the run's horizon, and its basis:
    "plan" (what is left of the planned epochs) or "as long again" (open-ended).
    `ratio`: points per epoch, where the caller knows them better (points_per_epoch)."""
    left = view.epochs_left() if view.unit != "fit" else None
    if left is not None:
        ratio = view.points_per_epoch() if ratio is None else ratio
        if ratio == ratio:
            return float(left) * ratio, "plan"
    return float(max(1, view.end - view.first)), "as long again"


def points_per_epoch(view: RunAtEpoch, slope: float, per_epoch: float | None) -> float:
    """Points per epoch as a slope per point is turned into one per epoch: on intervals,
    the slope per epoch by where they ended (growth_evidence's, view.slope_per_epoch) over
    the slope per point, so that "+X by the plan's end" and "N epochs to the limit" go
    with the title's rate."""
    if view.unit == "interval" and per_epoch is not None and per_epoch > 0 and slope > 0:
        return per_epoch / slope
    return view.points_per_epoch()


def host_limit(view: RunAtEpoch) -> tuple[float, str]:
    """What host memory runs into: the cgroup memory limit where set, else physical memory."""
    limit = view.latest("mem_limit")
    if limit == limit and limit > 0:
        return limit, "cgroup memory limit"
    return view.latest("sys_total"), "physical memory"


def projection(
    view: RunAtEpoch, level: float, limit: float, slope: float, per_epoch: float | None = None
) -> dict[str, Any]:
    """Where `level`, growing by `slope` per point (`per_epoch` per epoch, where known), is
    at the end of the horizon, and when it reaches `limit` (epochs or fits, and seconds
    from recent point times)."""
    ratio = points_per_epoch(view, slope, per_epoch) if view.unit != "fit" else math.nan
    points, basis = horizon(view, ratio)
    out: dict[str, Any] = {"horizon": basis, "horizon_points": round(points, 1)}
    if slope > 0 and level == level:
        out["growth_in_horizon"] = slope * points
        out["level_at_horizon"] = level + slope * points
    if not (limit == limit and limit > 0 and slope > 0 and level == level):
        return out
    to_limit = max(0.0, (limit - level) / slope)
    out["limit"] = limit
    out["points_to_limit"] = round(to_limit, 1)
    if view.unit == "fit":
        out["fits_to_limit"] = round(to_limit, 1)
    elif ratio == ratio and ratio > 0:
        out["epochs_to_limit"] = round(to_limit / ratio, 1)
    per_point, per_epoch_s = view.point_seconds(), view.epoch_seconds()
    if "epochs_to_limit" in out and per_epoch_s == per_epoch_s and per_epoch_s > 0:
        out["seconds_to_limit"] = round(out["epochs_to_limit"] * per_epoch_s, 1)
    elif per_point == per_point and per_point > 0:
        out["seconds_to_limit"] = round(to_limit * per_point, 1)
    left = view.epochs_left() if view.unit != "fit" else None
    if left is not None:
        out["epochs_left_in_plan"] = left
    return out


def severity(proj: dict[str, Any], base: float) -> str:
    """The rule of the module docstring; `base` is the level the series started from (the
    fit's value after its compiling epoch), so a share is of the process before it grew."""
    points = float(proj.get("horizon_points", 0.0))
    to_limit = proj.get("points_to_limit")
    planned = proj.get("horizon") == "plan"
    if to_limit is not None:
        if (to_limit <= points and planned) or (not planned and to_limit <= CRITICAL_POINTS):
            return CRITICAL
        if to_limit <= points:
            return WARNING
    at_horizon = proj.get("level_at_horizon", math.nan)
    if base == base and base > 0 and at_horizon - base >= LARGE_SHARE * base:
        return WARNING
    return INFO


# A run with no plan whose limit (the disk's free space; for a process that serves, the
# memory) is reached within this long at its pace: a warning, however short it has run so
# far. Its horizon, "as long again", made "full in about 20 min" and "the physical memory in
# about 28 min" info; a fit whose plan ends first is judged by its plan.
SOON_SECONDS = 3600.0


def soon(proj: dict[str, Any], said: str) -> str:
    """`said`, or a warning where an unplanned run reaches its limit within SOON_SECONDS."""
    seconds = proj.get("seconds_to_limit")
    if (
        said == INFO
        and proj.get("horizon") != "plan"
        and isinstance(seconds, int | float)
        and seconds <= SOON_SECONDS
    ):
        return WARNING
    return said


def when_text(proj: dict[str, Any], noun: str = "epoch") -> str:
    """'in about 40 epochs (2.1 h)' (or fits, or windows: RunAtEpoch.noun) or '' without a
    projection."""
    key = "fits_to_limit" if noun == "fit" else "epochs_to_limit"
    n = proj.get(key)
    if n is None:
        return ""
    text = f"in about {n:.0f} {noun}s"
    if "seconds_to_limit" in proj:
        text += f" ({fmt_duration(proj['seconds_to_limit'])})"
    return text


def consequence(proj: dict[str, Any], limit_name: str, noun: str = "epoch") -> str:
    """The title's tail: when the limit is reached, if within the horizon; else what the
    growth comes to within it ('+120 MiB more by the planned end' or '... if it runs as
    long again'), with the limit's distance in brackets; '' without a projection."""
    when = when_text(proj, noun)
    limit = proj.get("limit")
    to_limit = proj.get("points_to_limit")
    if when and limit is not None and to_limit is not None and to_limit <= proj.get("horizon_points", 0):
        return f"reaches the {limit_name} ({fmt_bytes(limit)}) {when}"
    grown = proj.get("growth_in_horizon")
    if grown is None or grown <= 0:
        return ""  # a plan run to its end has nothing more to say ("+0 B more by the planned end")
    text = f"+{fmt_bytes(grown)} more " + (
        "by the planned end" if proj.get("horizon") == "plan" else "if it runs as long again"
    )
    return f"{text} (the {limit_name} {when})" if when else text


def shown_start(g: Growth, w: Window, now: float) -> float:
    """Where a title says the growth started: the slope drawn back from `now` over the
    window, so that "A -> B over epochs i-j" and "S per epoch" are one line (the fitted
    line's own start is of a lagged floor, a lower envelope: "2 -> 26 files over epochs
    9-26"); the window's first value where that would be at or below zero."""
    start = now - g.slope * (len(w) - 1) if now == now else g.start
    return start if start > 0 or not w.values else w.values[0]


def growth_evidence(view: RunAtEpoch, g: Growth, w: Window, current: float) -> dict[str, Any]:
    """The numbers every growth finding quotes; `start` and `now` are the two its title
    quotes (`now`: the measure's `current` value at the finding's epoch, not the fitted
    line's end, so card and title agree; `start`: see shown_start)."""
    out = {
        "slope_per_epoch": g.slope,
        "slope_ci95": [g.slope_low, g.slope_high],
        "relative_slope_per_epoch": g.rel_slope,
        "p_value": g.p_value,
        "lag1_autocorrelation": g.rho1,
        "epochs": window_epochs(view, w.indexes),
        **({"fits": window_fits(view, w.indexes)} if view.unit == "fit" else {}),
        "points": g.n,
        "start": shown_start(g, w, current),
        "now": current if current == current else g.now,
        "baseline": g.baseline,
    }
    if view.unit == "fit":
        out["unit"] = "fit"
        out["slope_per_fit"] = g.slope
        out["slope_per_epoch"] = None
    elif view.unit != "epoch":
        # Judged on sub-epoch intervals: the slope is per interval, the epochs are those
        # the window's intervals belong to.
        out["unit"] = view.unit
        out["slope_per_interval"] = g.slope
        ratio = view.points_per_epoch()
        per_epoch = view.slope_per_epoch(g.slope, w)
        out["slope_per_epoch"] = per_epoch
        out["intervals_per_epoch"] = ratio if ratio == ratio else None
        # Every interval in the unit of its estimate: the CI of the slope per epoch.
        out["slope_per_interval_ci95"] = [g.slope_low, g.slope_high]
        scale = per_epoch / g.slope if per_epoch is not None and g.slope else None
        out["slope_ci95"] = [g.slope_low * scale, g.slope_high * scale] if scale is not None else None
    return out
