"""Trend statistics against scipy and hand-worked values."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import scipy.stats as st

from epochwatch.analysis import trend


def _series(seed: int, n: int, slope: float = 0.0, ties: bool = False) -> list[float]:
    rng = random.Random(seed)
    y = [slope * i + rng.gauss(0, 1) for i in range(n)]
    return [round(v) for v in y] if ties else y


def test_mk_on_a_monotone_series_matches_the_hand_worked_value() -> None:
    # y = 1..5: S = 10, Var(S) = 5*4*15/18, z = (S - 1)/sqrt(Var), one-sided p = sf(z).
    mk = trend.mann_kendall([1, 2, 3, 4, 5], autocorr=False)
    assert mk.s == 10
    assert mk.var_s == pytest.approx(5 * 4 * 15 / 18)
    assert mk.z == pytest.approx(9 / math.sqrt(5 * 4 * 15 / 18))
    assert mk.p_increasing == pytest.approx(0.0137432, abs=1e-6)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ties", [False, True])
def test_mk_score_is_kendalls_numerator(seed: int, ties: bool) -> None:
    y = _series(seed, 40, slope=0.05, ties=ties)
    n = len(y)
    s_direct = sum((y[j] > y[i]) - (y[j] < y[i]) for i in range(n) for j in range(i + 1, n))
    assert trend.mk_score(y) == s_direct
    if not ties:
        tau = st.kendalltau(range(n), y).statistic
        assert trend.mk_score(y) == pytest.approx(tau * n * (n - 1) / 2)


def test_mk_variance_tie_correction() -> None:
    y = [1, 1, 2, 2, 2, 3, 4, 4, 5, 6]
    n = len(y)
    expected = (n * (n - 1) * (2 * n + 5) - (2 * 1 * 9 + 3 * 2 * 11 + 2 * 1 * 9)) / 18
    assert trend.mk_variance(y) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(6))
def test_mk_z_and_p_match_scipy_asymptotic_kendall_without_ties(seed: int) -> None:
    # scipy's asymptotic Kendall test has no continuity correction; ours has (S - 1).
    y = _series(seed, 60, slope=0.02)
    mk = trend.mann_kendall(y, autocorr=False)
    n = len(y)
    z_scipy = (
        st.kendalltau(range(n), y, method="asymptotic").statistic * n * (n - 1) / 2 / math.sqrt(mk.var_s)
    )
    assert mk.z == pytest.approx(z_scipy - math.copysign(1, z_scipy) / math.sqrt(mk.var_s), rel=1e-9)
    assert mk.p_increasing == pytest.approx(st.norm.sf(mk.z), rel=1e-9)


@pytest.mark.parametrize("z", [-3.0, 0.0, 1.0, 3.09, 6.0, 9.0])
def test_normal_tail_matches_scipy(z: float) -> None:
    assert trend.normal_sf(z) == pytest.approx(st.norm.sf(z), rel=1e-12)


@pytest.mark.parametrize("p", [0.001, 0.025, 0.5, 0.975])
def test_normal_quantile_matches_scipy(p: float) -> None:
    assert trend.normal_ppf(p) == pytest.approx(st.norm.ppf(p), rel=1e-9)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ties", [False, True])
def test_theil_sen_matches_scipy(seed: int, ties: bool) -> None:
    y = _series(seed, 35, slope=0.3, ties=ties)
    ours = trend.theil_sen(y)
    ref = st.theilslopes(y)
    assert ours.slope == pytest.approx(ref.slope)
    assert ours.intercept == pytest.approx(ref.intercept)
    assert ours.low == pytest.approx(ref.low_slope)
    assert ours.high == pytest.approx(ref.high_slope)


def test_theil_sen_with_x_and_other_confidence_matches_scipy() -> None:
    rng = random.Random(3)
    x = sorted(rng.choice(range(30)) for _ in range(25))
    y = [2.0 * xi + rng.gauss(0, 3) for xi in x]
    ours = trend.theil_sen(y, x, confidence=0.9)
    ref = st.theilslopes(y, x, alpha=0.9)
    assert (ours.slope, ours.intercept, ours.low, ours.high) == pytest.approx(
        (ref.slope, ref.intercept, ref.low_slope, ref.high_slope)
    )


@pytest.mark.parametrize("seed", range(5))
def test_kendall_tau_b_matches_scipy_with_ties(seed: int) -> None:
    a = _series(seed, 30, ties=True)
    b = [v + r for v, r in zip(a, _series(seed + 100, 30, ties=True), strict=True)]
    assert trend.kendall_tau(a, b) == pytest.approx(st.kendalltau(a, b).statistic)


def test_lag1_autocorrelation_matches_numpy() -> None:
    y = np.array(_series(1, 50))
    d = y - y.mean()
    expected = float((d[:-1] * d[1:]).sum() / (d * d).sum())
    assert trend.lag1_autocorr(list(y)) == pytest.approx(expected)


def test_variance_inflation_is_the_ar1_sum_and_tends_to_its_limit() -> None:
    rho, n = 0.5, 40
    direct = 1 + 2 * sum((1 - k / n) * rho**k for k in range(1, n))
    assert trend.variance_inflation(rho, n) == pytest.approx(direct)
    assert trend.variance_inflation(0.5, 100_000) == pytest.approx((1 + 0.5) / (1 - 0.5), rel=1e-3)
    assert trend.variance_inflation(-0.3, 50) == 1.0


def test_autocorrelation_correction_widens_the_variance_of_ar_noise() -> None:
    rng = random.Random(5)
    e = [0.0]
    for _ in range(59):
        e.append(0.8 * e[-1] + rng.gauss(0, 1))
    plain = trend.mann_kendall(e, autocorr=False)
    corrected = trend.mann_kendall(e, autocorr=True)
    assert corrected.inflation > 2
    assert corrected.var_s == pytest.approx(plain.var_s * corrected.inflation)
    assert abs(corrected.z) <= abs(plain.z)  # less sure of a trend either way


@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_running_min_is_the_trailing_minimum(k: int) -> None:
    y = _series(2, 40)
    assert trend.running_min(y, k) == [min(y[max(0, i - k + 1) : i + 1]) for i in range(len(y))]


def test_running_min_over_a_sawtooth_with_a_rising_floor_rises() -> None:
    y = [10 * (i // 5) + (i % 5) * 30 for i in range(40)]
    env = trend.running_min(y, 5)[4:]
    assert env == sorted(env)
    assert env[-1] > env[0]


# -- the growth decision ----------------------------------------------------------------------

RULE = trend.GrowthRule()


def test_a_clear_ramp_is_growth_with_the_right_slope() -> None:
    rng = random.Random(1)
    y = [(1 + 0.02 * i) * math.exp(rng.gauss(0, 0.03)) for i in range(40)]
    g = trend.assess_growth(y, RULE)
    assert g is not None
    assert g.slope == pytest.approx(0.02, rel=0.25)
    assert g.slope_low <= g.slope <= g.slope_high
    assert g.p_value < RULE.alpha
    assert g.now > g.start


@pytest.mark.parametrize("seed", range(10))
def test_flat_noise_is_not_growth(seed: int) -> None:
    rng = random.Random(seed)
    assert trend.assess_growth([math.exp(rng.gauss(0, 0.3)) for _ in range(60)], RULE) is None


def test_too_few_points_is_no_verdict() -> None:
    assert trend.assess_growth([1, 2, 3, 4, 5], RULE) is None


def test_a_step_is_not_a_trend() -> None:
    rng = random.Random(2)
    y = [(1.3 if i >= 30 else 1.0) * math.exp(rng.gauss(0, 0.03)) for i in range(50)]
    assert trend.mann_kendall(y, autocorr=False).p_increasing < 0.001  # a naive test calls it a trend
    assert trend.assess_growth(y, RULE) is None


def test_a_plateau_after_warm_up_is_not_a_trend() -> None:
    rng = random.Random(3)
    y = [(1 + 0.3 * (1 - math.exp(-i / 3))) * math.exp(rng.gauss(0, 0.005)) for i in range(40)]
    assert trend.mann_kendall(y, autocorr=False).p_increasing < 0.001
    assert trend.assess_growth(y, RULE) is None


def test_slope_floors_relative_and_absolute() -> None:
    y = [100 + 0.05 * i for i in range(50)]  # sure, but 0.05%/epoch of the baseline
    assert trend.assess_growth(y, RULE) is None
    y = [100 + 1.0 * i for i in range(50)]
    assert trend.assess_growth(y, RULE) is not None
    assert trend.assess_growth(y, trend.GrowthRule(min_abs_slope=2.0)) is None


def test_only_the_trailing_window_counts() -> None:
    y = [float(i) for i in range(50)] + [50.0] * 60  # grew, then stopped long ago
    assert trend.assess_growth(y, RULE) is None


def test_best_step_cost_matches_trying_every_split() -> None:
    """The O(n log n) level-shift cost (heaps, prefix and suffix) against its definition."""
    import math
    import random

    from epochwatch.analysis.trend import _l1_best_step, median

    def _l1_about_median(part: list[float]) -> float:
        m = median(part)
        return sum(abs(v - m) for v in part)

    def every_split(y: list[float]) -> float:
        costs = [_l1_about_median(y[:k]) + _l1_about_median(y[k:]) for k in range(3, len(y) - 2)]
        return min(costs, default=math.inf)

    rng = random.Random(7)
    for trial in range(600):
        n = rng.randint(1, 70)
        if trial % 3 == 0:
            y = [rng.gauss(0, 1) for _ in range(n)]
        elif trial % 3 == 1:
            y = [float(rng.randint(0, 3)) for _ in range(n)]  # ties
        else:
            y = [1.0 + 0.01 * i + (5.0 if i > n // 2 else 0.0) for i in range(n)]  # a step
        want, got = every_split(y), _l1_best_step(y)
        assert got == want if math.isinf(want) else math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
