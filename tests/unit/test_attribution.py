"""The tests a co-trending series must pass before it is named, and whose functions the
retrace detector judges."""

from __future__ import annotations

import itertools
import random

from epochwatch.analysis.attribution import association
from epochwatch.analysis.functions import judged, origin


def _walk(rng: random.Random, n: int, drift: float) -> list[float]:
    out = [0.0]
    for _ in range(n - 1):
        out.append(out[-1] + drift + rng.gauss(0, 1))
    return out


def test_two_independent_rising_series_are_rarely_associated() -> None:
    rng = random.Random(1)
    hits = 0
    for _ in range(200):
        a = [0.05 * i + rng.gauss(0, 1) for i in range(40)]
        b = _walk(rng, 40, 0.5)
        da = [y - x for x, y in itertools.pairwise(a)]
        db = [y - x for x, y in itertools.pairwise(b)]
        _, p = association(da, db)
        hits += p < 0.005
    assert hits <= 4  # about 1 in 200 expected


def test_changes_that_drive_the_time_are_associated() -> None:
    rng = random.Random(2)
    cause = _walk(rng, 40, 0.3)
    time = [1.0 + 0.2 * c + rng.gauss(0, 0.05) for c in cause]
    d_cause = [y - x for x, y in itertools.pairwise(cause)]
    d_time = [y - x for x, y in itertools.pairwise(time)]
    tau, p = association(d_cause, d_time)
    assert tau > 0.5 and p < 1e-4


def test_too_little_to_judge() -> None:
    assert association([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == (0.0, 1.0)
    assert association([1.0] * 20, list(map(float, range(20)))) == (0.0, 1.0)


def test_functions_judged_by_the_retrace_detector() -> None:
    for name in ("train_step", "one_step_on_data", "multi_step_on_iterator", "my_next_func"):
        assert judged(name) and origin(name) == "model"
    for name in ("_next_func", "_init_func", "_finalize_func", "_remote_next_func", "Dataset_map_normalize"):
        assert not judged(name) and origin(name) == "tf.data"
