"""cleanup_in_loop on synthetic custom loops: inside the epochs, or between models."""

from __future__ import annotations

from typing import Any

from bench import synthetic as syn
from tests.support import analyze_records


def _cleanup(calls: int, seconds: float) -> dict[str, Any]:
    return {"gc.collect": {"calls": calls, "seconds": seconds, "where": "train.py:40 train_step"}}


def _loop(epoch_source: str, new_model_each: bool) -> list[dict[str, Any]]:
    """A custom loop's automatic epochs of 20 steps (1 s), each with 20 gc.collect() calls
    taking 0.4 s; with `new_model_each`, a new model's optimizer each epoch (its fit_start)."""
    records = syn.trace(
        8,
        lambda i: {
            "seconds": 1.0,
            "steps": 20,
            "source": "auto",
            "epoch_source": epoch_source,
            "cleanup": _cleanup(20, 0.4),
        },
    )
    out = [records[0]]
    for k, rec in enumerate(records[1:-1]):
        if new_model_each or k == 0:
            out.append(
                {"type": "fit_start", "run_id": rec["run_id"], "t": rec["t"] - 1.5, "fit": k, "source": "optimizer",
                 "model": {"serial": k if new_model_each else 0, "name": "Adam"}}
            )  # fmt: skip
            if k:
                out.append({"type": "fit_end", "run_id": rec["run_id"], "t": rec["t"] - 1.6, "fit": k - 1})
        out.append(rec)
    return [*out, records[-1]]


def test_a_collection_every_step_of_a_custom_loop_is_said_with_its_line() -> None:
    (f,) = analyze_records(_loop("data_pass", new_model_each=False), "cleanup_in_loop")
    assert f.severity == "warning" and "`gc.collect()` called every step" in f.title, f.title
    assert "train.py:40 train_step" in f.title and "40%" in f.title, f.title


def test_cleanups_between_the_models_of_a_loop_are_models_in_loop_s() -> None:
    """flower700's clients (clear_session() before each new model, gc.collect() after it):
    the calls land in the epoch each new model's first update ends, and the loop is
    models_in_loop's, whose fix replaces them: a warning cleanup_in_loop said it twice."""
    assert analyze_records(_loop("new_model", new_model_each=True), "cleanup_in_loop") == []
