"""Short-run shapes: growth so blatant that a few epochs prove it, and level steps.

`trend.assess_growth` needs tens of epochs; a run of 6-12 epochs, or a slowdown that
jumps at one epoch and stays, needs tests whose evidence scales with the effect. Both
live here, on top of the statistics in trend.py; analysis/growth.py and the slowdown
detector decide when each applies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from epochwatch.analysis.trend import (
    Growth,
    _l1_best_step,
    _l1_line,
    _z,
    median,
    mk_score,
    mk_variance,
    normal_sf,
    theil_sen,
    theil_sen_slope,
)


@dataclass(frozen=True)
class BlatantRule:
    """Growth so strong and so straight that a few points are enough (short runs).

    The evidence scales with the effect: a run of 6-12 epochs cannot give a 60-point
    window, but RSS up 50% in a straight line over 8 epochs is not noise. The test is
    the uncorrected one-sided Mann-Kendall at `alpha`, a straight-line fit that explains
    at least `min_r2` of the variance, and floors on the slope and on the total growth
    that are much higher than the long-run rule's. The newest half must keep growing
    (a warm-up that levels off fails) and a single level shift must not explain it
    better than the line (that is a step, judged by `assess_step`).
    """

    min_points: int = 5
    span: int = 12  # used while the run has at most this many usable points
    alpha: float = 0.01
    min_r2: float = 0.9
    min_rel_slope: float = 0.02
    min_abs_slope: float = 0.0
    min_rel_growth: float = 0.15
    newest_frac: float = 0.6
    step_ratio: float = 0.8
    # The newest point must be the window's highest (memory and disk: a leak keeps
    # setting new highs; a warm-up that has levelled off does not). Off for noisy series.
    new_high: bool = False


def line_fit(y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares slope, intercept and R^2 of y against 0, 1, 2, ..."""
    n = len(y)
    if n < 2:
        return 0.0, float(y[0]) if n else 0.0, 0.0
    mx = (n - 1) / 2.0
    my = sum(y) / n
    sxx = sum((i - mx) ** 2 for i in range(n))
    sxy = sum((i - mx) * (v - my) for i, v in enumerate(y))
    syy = sum((v - my) ** 2 for v in y)
    slope = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 0.0
    return slope, my - slope * mx, r2


def assess_blatant(y: Sequence[float], rule: BlatantRule) -> Growth | None:
    """Strong straight growth over a short window (see BlatantRule), else None."""
    window = list(y[-rule.span :])
    n = len(window)
    if n < rule.min_points:
        return None
    s = mk_score(window)
    var_s = mk_variance(window)
    p = normal_sf(_z(s, var_s))
    if s <= 0 or p > rule.alpha:
        return None
    if rule.new_high and window[-1] <= max(window[:-1]):
        return None
    r2 = line_fit(window)[2]
    if r2 < rule.min_r2:
        return None
    baseline = median(window[: max(2, min(3, n // 3))])
    scale = abs(baseline) if baseline else 1.0
    ts = theil_sen(window)
    if ts.slope < rule.min_abs_slope or ts.slope < rule.min_rel_slope * scale:
        return None
    if ts.slope * (n - 1) < rule.min_rel_growth * scale:
        return None
    if theil_sen_slope(window[n // 2 :]) < rule.newest_frac * ts.slope:
        return None
    if (
        rule.step_ratio > 0
        and n >= 6
        and _l1_best_step(window) <= rule.step_ratio * _l1_line(window, ts.slope)
    ):
        return None
    return Growth.fitted(ts, n, baseline, scale, p, 0.0)


@dataclass(frozen=True)
class StepRule:
    """A sudden lasting change of level: at least `min_ratio` between the medians, every
    point after the onset at least `min_gap` times every point before it (a clean
    separation, not a few outliers), with at least `min_before` points before and
    `min_after` after (lasting)."""

    min_before: int = 2
    min_after: int = 3
    min_ratio: float = 1.5
    min_gap: float = 1.15
    window: int = 60
    # The shift of log level must be this many standard errors (from the spread of log
    # values within the two levels): a 1.5x jump is news on 5% noise, not on 30%.
    min_t: float = 10.0


@dataclass(frozen=True)
class Step:
    at: int  # index in the window of the first point at the new level
    before: float  # median level before
    after: float  # median level after
    ratio: float
    n: int


def assess_step(y: Sequence[float], rule: StepRule) -> Step | None:
    """The most recent upward level shift of the window, when it is clean and lasting.

    O(n) per call (it runs after every epoch on healthy runs): only clean splits are
    candidates (everything after at least `min_gap` times everything before, from prefix
    maxima and suffix minima), the best of them by squared error of the log levels (prefix
    sums); then its size, its significance and whether it lasted.
    """
    window = list(y[-rule.window :])
    n = len(window)
    if n < rule.min_before + rule.min_after or min(window) <= 0:
        return None
    suffix_min = window[:]
    for k in range(n - 2, -1, -1):
        suffix_min[k] = min(suffix_min[k], suffix_min[k + 1])
    logs = [math.log(v) for v in window]
    s1 = [0.0]
    s2 = [0.0]
    for v in logs:
        s1.append(s1[-1] + v)
        s2.append(s2[-1] + v * v)

    def sse(a: int, b: int) -> float:
        m = b - a
        total = s1[b] - s1[a]
        return (s2[b] - s2[a]) - total * total / m

    best_k, best_cost = -1, math.inf
    top = max(window[: rule.min_before - 1]) if rule.min_before > 1 else -math.inf
    for k in range(rule.min_before, n):
        top = max(top, window[k - 1])
        if suffix_min[k] < rule.min_gap * top:
            continue
        cost = sse(0, k) + sse(k, n)
        if cost < best_cost:
            best_k, best_cost = k, cost
    # The best split over every onset (even one point before the end), then "lasting":
    # forcing min_after points after it would move the onset earlier than it was.
    if best_k < 0 or n - best_k < rule.min_after:
        return None
    before, after = window[:best_k], window[best_k:]
    mb, ma = median(before), median(after)
    step = Step(best_k, mb, ma, ma / mb, n)
    if step.ratio < rule.min_ratio:
        return None
    nb, na = best_k, n - best_k
    pooled = best_cost / max(1, n - 2)
    se = math.sqrt(max(pooled, 1e-6) * (1 / nb + 1 / na))
    if ((s1[n] - s1[best_k]) / na - s1[best_k] / nb) / se < rule.min_t:
        return None
    # Lasting: the newest points are still at the new level, not back at the old one.
    if min(after[-rule.min_after :]) < mb * math.sqrt(rule.min_ratio):
        return None
    return step
