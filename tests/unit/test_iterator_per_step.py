"""iterator_per_step: `next(iter(ds))` for each step (GM-NAS#4), from the epochs' counts."""

from __future__ import annotations

import sys
from typing import Any

from bench import synthetic as syn
from epochwatch.recorder.iterators_per_step import batches
from tests.support import analyze_records

SITE = "train.py:65 <module>"


def _loop(made: int, epochs: int = 3, steps: int = 100, timed: bool = True) -> list[dict[str, Any]]:
    """Window epochs of `steps` steps and 30 s, each with `made` new iterators."""

    def make(i: int) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "source": "auto",
            "epoch_source": "window_steps",
            "seconds": 30.0,
            "steps": steps,
        }
        if made:
            block: dict[str, Any] = {"count": made, "site": SITE, "dataset": "train_ds"}
            if timed:
                block["seconds_to_step"] = 27.6 * made / steps
            rec["new_iterators"] = block
        return rec

    return syn.trace(epochs, make)


def test_an_iterator_for_each_step_is_said_with_its_line_and_time() -> None:
    (f,) = analyze_records(_loop(100), "iterator_per_step")
    assert f.severity == "warning" and f.epoch == 0 and f.target is None, f
    assert f.title == (
        "a new iterator over `train_ds` made for each step (100 for 100 steps, at train.py:65 <module>): "
        "27.60s (92%) of the epochs' 30.00s from each new iterator to its step"
    ), f.title
    assert "`it = iter(train_ds)` before the loop" in f.hint


def test_at_the_run_s_end_it_counts_the_whole_run() -> None:
    (f,) = analyze_records(_loop(100, epochs=5), "iterator_per_step", episodes=True)
    assert f.evidence["iterators"] == 500 and f.evidence["steps"] == 500 and f.update == 1, f.evidence


def test_untimed_steps_are_said_by_count() -> None:
    (f,) = analyze_records(_loop(100, timed=False), "iterator_per_step")
    assert f.title.endswith("(100 for 100 steps, at train.py:65 <module>)") and "share" not in f.evidence


def test_a_few_iterators_are_quiet() -> None:
    assert analyze_records(_loop(0), "iterator_per_step") == []
    assert analyze_records(_loop(10, epochs=1), "iterator_per_step") == []  # under 20
    assert analyze_records(_loop(30, steps=100, epochs=1), "iterator_per_step") == []  # under half


class _Cardinality:
    def __init__(self, n: int) -> None:
        self.n = n

    def cardinality(self) -> int:
        return self.n


def test_a_pass_s_batches_as_tf_data_and_len_say_them() -> None:
    assert batches(_Cardinality(313)) == 313
    assert batches(_Cardinality(-1)) == sys.maxsize  # endless (`repeat()`)
    assert batches(_Cardinality(-2)) is None  # not known (`filter`, `unbatch`)
    assert batches([1, 2, 3]) == 3
    assert batches(object()) is None


def test_hostile_blocks_are_no_finding_and_no_error() -> None:
    """A trace is a user's file: the block of any shape, its numbers of any type."""
    for block in (
        "many",
        ["x"],
        {"count": "20"},
        {"count": float("nan")},
        {"count": 1e300, "site": {"a": 1}},
    ):

        def make(i: int, block: Any = block) -> dict[str, Any]:
            return {
                "source": "auto",
                "seconds": 30.0,
                "steps": "100",
                "new_iterators": block,
                "looking_inside": "yes",
            }

        assert analyze_records(syn.trace(3, make), "iterator_per_step") == [], block
