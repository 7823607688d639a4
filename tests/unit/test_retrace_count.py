"""The one retrace count: each fit's first epoch is warm-up, everything after it is news."""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.retrace_count import RetraceCount
from epochwatch.analysis.series import FIRST, EpochSeries


def _epoch(epoch: int, new: Any, fit: int | None = 0, **extra: Any) -> dict[str, Any]:
    return {"type": "epoch", "epoch": epoch, "fit": fit, "seconds": 1.0, "retraces": {"new": new}, **extra}


def test_each_fits_first_epoch_is_left_out_as_the_series_marks_it() -> None:
    records = [
        _epoch(0, 6),  # fit 0 warms up
        _epoch(1, 2),
        _epoch(2, 0),
        _epoch(0, 6, fit=1),  # fit 1 warms up
        _epoch(1, 1, fit=1),
        _epoch(0, 4, fit=None),  # a loop that starts again from epoch 0 (a new segment)
        _epoch(1, 3, fit=None),
        _epoch(0, 5, fit=None),  # the same loop restarting: its epoch number went back
        _epoch(2, "many", fit=None),  # junk counts nothing
        _epoch(3, 7, fit=None, loop_epoch=1),  # a nested fit's epoch: counted in the loop's epoch
    ]
    count, series = RetraceCount(), EpochSeries()
    for rec in records:
        count.add(rec)
        if "loop_epoch" not in rec:
            series.add_epoch(rec)
    assert count.total == 6 + 2 + 6 + 1 + 4 + 3 + 5
    assert count.after_warmup == 2 + 1 + 3
    # the same epochs the detectors take as warm-up
    warm = [i for i in range(series.count) if series.warm[i] == FIRST]
    assert warm == [0, 3, 5, 7]
    new = [series.value("retrace_new", i) for i in range(series.count) if series.warm[i] != FIRST]
    kept = sum(v for v in new if v == v)
    assert kept == count.after_warmup


def test_a_function_traced_anew_in_every_one_epoch_fit_is_no_warm_up() -> None:
    """trieste#722: a @tf.function method on a new object each round, 40 one-epoch fits of one
    model: every epoch a fit's first, so the header said no traces after warm-up beside a
    retrace_storm of 37. A function the fit before traced too counts; Keras' fit functions
    (made anew by each compile) and a function's first fit stay warm-up."""

    def fit(n: int, **functions: int) -> dict[str, Any]:
        blocks = {name: {"new": k, "total": k} for name, k in functions.items()}
        return _epoch(
            0, sum(functions.values()), fit=n, retraces={"new": sum(functions.values()), "functions": blocks}
        )

    count = RetraceCount()
    count.add(fit(0, one_step_on_iterator=2, __call__=1))
    for n in range(1, 5):
        count.add(fit(n, one_step_on_iterator=2, __call__=1))
    count.add(fit(5, one_step_on_iterator=2, other=1))  # `other`'s first trace: its warm-up
    assert count.after_warmup == 4, count.after_warmup
