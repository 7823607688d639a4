"""Trend statistics for short per-epoch series: Mann-Kendall, Theil-Sen, lower envelopes.

Pure Python on purpose: the windows are short (tens of epochs), the daemon and the CLI
must not need numpy, and the hook calls this after every epoch, so each function is
O(n log n) or O(n^2) on n <= ~100 points with small constants.

Why these tests: epoch times on shared machines are noisy, skewed and autocorrelated.
Mann-Kendall is rank based (a 3x outlier counts like any other larger value) and its
variance is corrected for lag-1 autocorrelation so that slow wander (AR noise) is not
mistaken for a trend. Theil-Sen gives a slope that ignores outliers, with Sen's
confidence interval. `assess_growth` combines them with the floors and guards that keep
healthy runs quiet; it is the one decision every growth detector uses.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_SQRT2 = math.sqrt(2.0)
_NORMAL = NormalDist()


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal, accurate in the far tail (via erfc)."""
    return 0.5 * math.erfc(z / _SQRT2)


def normal_ppf(p: float) -> float:
    """The standard normal quantile."""
    return _NORMAL.inv_cdf(p)


def mk_score(y: Sequence[float]) -> int:
    """Mann-Kendall S = sum over i<j of sign(y[j] - y[i]), in O(n log n) with bisect."""
    seen: list[float] = []
    s = 0
    for v in y:
        below = bisect_left(seen, v)
        above = len(seen) - bisect_right(seen, v)
        s += below - above
        insort(seen, v)
    return s


def _tie_term(values: Sequence[float]) -> int:
    return sum(t * (t - 1) * (2 * t + 5) for t in Counter(values).values() if t > 1)


def mk_variance(y: Sequence[float]) -> float:
    """Var(S) under no trend, corrected for ties (Kendall 1975)."""
    n = len(y)
    return (n * (n - 1) * (2 * n + 5) - _tie_term(y)) / 18.0


def acf(x: Sequence[float], lags: int) -> list[float]:
    """Sample autocorrelations at lags 1 to `lags` (mean removed); 0 for a constant series."""
    n = len(x)
    m = sum(x) / n
    d = [v - m for v in x]
    den = sum(v * v for v in d)
    if den <= 0:
        return [0.0] * lags
    return [sum(d[i] * d[i + k] for i in range(n - k)) / den for k in range(1, lags + 1)]


def lag1_autocorr(x: Sequence[float]) -> float:
    """Lag-1 sample autocorrelation; 0 for a constant series or fewer than 3 points."""
    return acf(x, 1)[0] if len(x) >= 3 else 0.0


def variance_inflation(rho: float, n: int) -> float:
    """n / n_eff for AR(1) dependence with lag-1 correlation rho (Yue & Wang 2004).

    Only positive autocorrelation inflates; a negative estimate is treated as none,
    which keeps the test conservative.
    """
    if rho <= 0 or n < 3:
        return 1.0
    rho = min(rho, 0.95)
    total = 0.0
    r = 1.0
    for k in range(1, n):
        r *= rho
        if r < 1e-9:
            break
        total += (1.0 - k / n) * r
    return 1.0 + 2.0 * total


@dataclass(frozen=True)
class MannKendall:
    n: int
    s: int
    var_s: float
    z: float
    p_increasing: float  # one-sided: P(S this large | no trend)
    rho1: float  # lag-1 autocorrelation of the detrended series that corrected var_s (0: none)
    inflation: float  # factor applied to var_s


def _z(s: int, var_s: float) -> float:
    if var_s <= 0:
        return 0.0
    if s > 0:
        return (s - 1) / math.sqrt(var_s)
    if s < 0:
        return (s + 1) / math.sqrt(var_s)
    return 0.0


def mann_kendall(y: Sequence[float], autocorr: bool = True) -> MannKendall:
    """Mann-Kendall trend test with tie correction and, optionally, a lag-1 correction.

    The autocorrelation is that of the series detrended with the Theil-Sen slope, with
    the usual small-sample bias correction (rho + (1 + 4 rho) / n): lag-1 estimates from
    30-60 points are biased low, and an underestimate is what lets AR noise through.
    """
    n = len(y)
    s = mk_score(y)
    var_s = mk_variance(y)
    rho = 0.0
    inflation = 1.0
    if autocorr and n >= 8:
        slope = theil_sen_slope(y)
        resid = [v - slope * i for i, v in enumerate(y)]
        raw = lag1_autocorr(resid)
        rho = max(0.0, min(0.95, raw + (1.0 + 4.0 * raw) / n))
        inflation = variance_inflation(rho, n)
        var_s *= inflation
    z = _z(s, var_s)
    return MannKendall(n, s, var_s, z, normal_sf(z), rho, inflation)


def _median_sorted(v: Sequence[float]) -> float:
    n = len(v)
    mid = n // 2
    return float(v[mid]) if n % 2 else (v[mid - 1] + v[mid]) / 2.0


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of nothing")
    return _median_sorted(sorted(values))


def _pair_slopes(y: Sequence[float], x: Sequence[float] | None = None) -> list[float]:
    n = len(y)
    if x is None:
        return [(y[j] - y[i]) / (j - i) for i in range(n) for j in range(i + 1, n)]
    return [(y[j] - y[i]) / (x[j] - x[i]) for i in range(n) for j in range(i + 1, n) if x[j] != x[i]]


def theil_sen_slope(y: Sequence[float]) -> float:
    """The median of pairwise slopes against 0, 1, 2, ... (no interval: cheaper)."""
    if len(y) < 2:
        return 0.0
    return median(_pair_slopes(y))


@dataclass(frozen=True)
class TheilSen:
    slope: float
    intercept: float
    low: float
    high: float


def theil_sen(y: Sequence[float], x: Sequence[float] | None = None, confidence: float = 0.95) -> TheilSen:
    """Theil-Sen slope, intercept (median(y) - slope * median(x)) and Sen's confidence interval.

    Matches scipy.stats.theilslopes (method 'separate'), which the tests check.
    """
    n = len(y)
    xs = list(range(n)) if x is None else list(x)
    if n < 2:
        v = float(y[0]) if n else 0.0
        return TheilSen(0.0, v, 0.0, 0.0)
    slopes = sorted(_pair_slopes(y, None if x is None else xs))
    if not slopes:
        return TheilSen(0.0, median(y), 0.0, 0.0)
    slope = _median_sorted(slopes)
    intercept = median(y) - slope * median(xs)
    z = normal_ppf((1.0 - confidence) / 2.0)  # negative
    sigsq = (n * (n - 1) * (2 * n + 5) - _tie_term(xs) - _tie_term(y)) / 18.0
    sigma = math.sqrt(max(sigsq, 0.0))
    nt = len(slopes)
    upper = min(round((nt - z * sigma) / 2.0), nt - 1)
    lower = max(round((nt + z * sigma) / 2.0) - 1, 0)
    return TheilSen(slope, intercept, slopes[lower], slopes[upper])


def running_min(y: Sequence[float], k: int) -> list[float]:
    """Trailing minimum over k points: the floor under a sawtooth.

    Checkpoint rotation and allocator chunks make memory and disk go up and down; what
    leaks is the floor. The trailing (not centred) minimum is what an online detector
    can know at each epoch; a real leak shows in it k - 1 epochs late.
    """
    if k <= 1:
        return list(y)
    if k <= 64:  # doubling (a sparse table): about log2(k) passes of one comparison a point
        return _running_min_doubling(list(y), k)
    out: list[float] = []
    window: list[tuple[float, int]] = []  # monotone deque as a list: (value, index)
    head = 0
    for i, v in enumerate(y):
        while len(window) > head and window[-1][0] >= v:
            window.pop()
        window.append((v, i))
        if window[head][1] <= i - k:
            head += 1
        out.append(window[head][0])
        if head > 64:
            del window[:head]
            head = 0
    return out


def _running_min_doubling(y: list[float], k: int) -> list[float]:
    """running_min for small k: m_2p[i] = min(m_p[i], m_p[i - p]) (indexes clamped at 0,
    so the first points take the minimum of what is there), up to the largest power of two
    p <= k; then min(m_p[i], m_p[i - (k - p)]) covers the k points ending at i."""
    n = len(y)
    if n == 0:
        return []
    m, p = y, 1
    while 2 * p <= k:
        m = [a if a <= b else b for a, b in zip(m, [m[0]] * min(p, n) + m[: max(0, n - p)], strict=True)]
        p *= 2
    rest = k - p
    if rest:
        m = [
            a if a <= b else b for a, b in zip(m, [m[0]] * min(rest, n) + m[: max(0, n - rest)], strict=True)
        ]
    return m


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long series (O(n^2); n is a window)."""
    n = len(a)
    conc = 0
    a_ties = b_ties = 0
    for i in range(n):
        ai, bi = a[i], b[i]
        for j in range(i + 1, n):
            da = a[j] - ai
            db = b[j] - bi
            if da == 0 and db == 0:
                a_ties += 1
                b_ties += 1
                continue
            if da == 0:
                a_ties += 1
                continue
            if db == 0:
                b_ties += 1
                continue
            conc += 1 if (da > 0) == (db > 0) else -1
    pairs = n * (n - 1) // 2
    den = math.sqrt((pairs - a_ties) * (pairs - b_ties))
    return conc / den if den > 0 else 0.0


# -- the growth decision ------------------------------------------------------------------


@dataclass(frozen=True)
class GrowthRule:
    """How much, how sure and how sustained growth must be before it is news.

    window: trailing points tested. min_points: fewer than this, no verdict.
    alpha: one-sided Mann-Kendall level after the autocorrelation correction; the online
    persistence (a few consecutive epochs) comes on top, see analysis/engine.py.
    min_rel_slope / min_abs_slope: the Theil-Sen slope per epoch must reach both floors,
    the first relative to the baseline (the median of the window's first points).
    min_rel_growth: the fitted growth across the window, relative to the baseline.
    newest_frac: the newest half of the window must still grow at this fraction of the
    whole window's slope (a warm-up that has levelled off is not a leak).
    step_ratio: growth that a single level shift explains much better than a line
    (L1 residuals at most step_ratio of the line's) is a step, not a trend; 0 disables.
    newest_alpha: when set, the newest half must also grow on its own, at this
    one-sided Mann-Kendall level (uncorrected): a curve that has levelled off fails.
    autocorr: correct the Mann-Kendall variance for lag-1 autocorrelation. Right for
    noisy series (epoch times); wrong for smooth ones (memory, disk), where the residuals
    of a staircase or a curve look like strong autocorrelation and would hide a real
    leak. Those rely on the floors and guards instead.
    """

    window: int = 60
    min_points: int = 10
    alpha: float = 0.001
    min_rel_slope: float = 0.002
    min_abs_slope: float = 0.0
    min_rel_growth: float = 0.05
    newest_frac: float = 0.4
    step_ratio: float = 0.8
    newest_alpha: float | None = None
    autocorr: bool = True


@dataclass(frozen=True)
class Growth:
    """A window that grows, with the numbers a finding quotes."""

    n: int
    slope: float
    slope_low: float
    slope_high: float
    p_value: float
    rho1: float
    baseline: float
    start: float  # fitted value at the window's first point
    now: float  # fitted value at the window's last point
    rel_slope: float  # slope / baseline, per epoch

    @classmethod
    def fitted(
        cls, ts: TheilSen, n: int, baseline: float, scale: float, p_value: float, rho1: float
    ) -> Growth:
        """The growth of `n` points along the Theil-Sen line `ts`; `scale`: the baseline's size."""
        now = ts.intercept + ts.slope * (n - 1)
        return cls(n, ts.slope, ts.low, ts.high, p_value, rho1, baseline, ts.intercept, now, ts.slope / scale)


def _l1_line(y: Sequence[float], slope: float) -> float:
    intercept = median([v - slope * i for i, v in enumerate(y)])
    return sum(abs(v - intercept - slope * i) for i, v in enumerate(y))


def _l1_prefix_costs(y: Sequence[float]) -> list[float]:
    """costs[k] = L1 distance of y[:k] about its median, for every k, in O(n log n).

    Two heaps split the values seen at their median: the distance is the upper half's sum
    less the lower half's (the middle value of an odd count, in the lower heap, is the
    median and adds nothing). The same value as summing |v - median(y[:k])| over y[:k].
    """
    low: list[float] = []  # max-heap (negated): the smaller half, one more when odd
    high: list[float] = []  # min-heap: the larger half
    low_sum = high_sum = 0.0
    costs = [0.0]
    for v in y:
        if low and v > -low[0]:
            heapq.heappush(high, v)
            high_sum += v
        else:
            heapq.heappush(low, -v)
            low_sum += v
        if len(low) > len(high) + 1:
            moved = -heapq.heappop(low)
            low_sum -= moved
            heapq.heappush(high, moved)
            high_sum += moved
        elif len(high) > len(low):
            moved = heapq.heappop(high)
            high_sum -= moved
            heapq.heappush(low, -moved)
            low_sum += moved
        middle = -low[0] if len(low) > len(high) else 0.0
        costs.append(high_sum - (low_sum - middle))
    return costs


def _l1_best_step(y: Sequence[float]) -> float:
    """The smallest L1 cost of one level shift (each side about its median, >= 3 points a
    side before the shift, >= 2 after): O(n log n) by prefix and suffix costs."""
    n = len(y)
    if n < 6:
        return math.inf
    before = _l1_prefix_costs(y)
    after = _l1_prefix_costs(y[::-1])  # after[m]: the cost of the last m points
    return min(before[k] + after[n - k] for k in range(3, n - 2))


def assess_growth(y: Sequence[float], rule: GrowthRule) -> Growth | None:
    """The growth of the trailing window of `y` when it is real news, else None.

    Cheapest tests first: most calls on healthy runs end at the Mann-Kendall score.
    """
    window = list(y[-rule.window :]) if len(y) > rule.window else list(y)
    n = len(window)
    if n < rule.min_points:
        return None
    if window[-1] <= window[0] and min(window) == max(window):
        return None  # flat (a constant floor under a sawtooth): no score needed
    # Uncorrected first: the correction only widens the variance, so if this fails, all fails.
    s = mk_score(window)
    if s <= 0:
        return None
    if normal_sf(_z(s, mk_variance(window))) > rule.alpha:
        return None
    mk = mann_kendall(window, autocorr=rule.autocorr)
    if mk.p_increasing > rule.alpha:
        return None
    head = window[: max(3, min(5, n // 4))]
    baseline = median(head)
    scale = abs(baseline) if baseline else 1.0
    ts = theil_sen(window)
    if ts.slope < rule.min_abs_slope or ts.slope < rule.min_rel_slope * scale:
        return None
    if ts.slope * (n - 1) < rule.min_rel_growth * scale:
        return None
    newest = window[n // 2 :]
    if theil_sen_slope(newest) < rule.newest_frac * ts.slope:
        return None
    if (
        rule.newest_alpha is not None
        and normal_sf(_z(mk_score(newest), mk_variance(newest))) > rule.newest_alpha
    ):
        return None
    if (
        rule.step_ratio > 0
        and n >= 8
        and _l1_best_step(window) <= rule.step_ratio * _l1_line(window, ts.slope)
    ):
        return None
    return Growth.fitted(ts, n, baseline, scale, mk.p_increasing, mk.rho1)
