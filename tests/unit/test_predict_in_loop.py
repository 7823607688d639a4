"""predict_in_loop: a custom loop that calls `model.predict` per sample (tensorflow#40261)."""

from __future__ import annotations

from typing import Any

from bench import synthetic as syn
from tests.support import analyze_records

MIB = syn.MIB


def _loop(
    calls: int, seconds: float, rows: int | None = 1, epochs: int = 4, api: str = "predict"
) -> list[dict[str, Any]]:
    """A custom loop's automatic epochs of 60 s and 25 steps, each with `calls` Keras inference
    calls of `rows` rows taking `seconds` in all (no block when `calls` is 0)."""

    def make(i: int) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "source": "auto",
            "epoch_source": "window_time",
            "seconds": 60.0,
            "steps": 25,
            "host": syn.host_block(700 * MIB),
        }
        if calls:
            block: dict[str, Any] = {"calls": calls, "apis": {api: calls}, "seconds": seconds}
            if rows is not None:
                block["rows"] = rows * calls
            rec["loop_inference"] = block
        return rec

    return syn.trace(epochs, make)


def test_a_predict_per_sample_taking_most_of_the_time_is_said_once() -> None:
    found = analyze_records(_loop(940, 59.4))
    mine = [f for f in found if f.kind == "predict_in_loop"]
    assert len(mine) == 1, found  # one problem, one finding: not one per epoch
    (f,) = mine
    assert f.severity == "warning" and f.target is None and f.epoch == 0, f
    assert f.title == (
        "`model.predict()` called 940 times inside the training loop (1 row a call, 63ms each): "
        "59.40s (99%) of the 60.00s of epoch 1"
    ), f.title
    assert f.evidence["share"] == 0.99 and f.evidence["rows_per_call"] == 1
    assert "model(x, training=False)" in f.hint and "predict_on_batch" in f.hint
    assert [f.kind for f in found] == ["predict_in_loop"]


def test_evaluate_per_sample_gets_its_own_fix() -> None:
    (f,) = analyze_records(_loop(500, 40.0, api="evaluate"), "predict_in_loop")
    assert "`model.evaluate()`" in f.title and "loss_fn(y, model(x, training=False))" in f.hint


def test_short_epochs_are_judged_together() -> None:
    """Epochs of 8 calls each: too few alone, 24 over the 3 newest."""
    (f,) = analyze_records(_loop(8, 40.0), "predict_in_loop")
    assert f.evidence["calls"] == 24 and f.evidence["epochs"] == [0, 2], f.evidence


def test_a_validation_predict_or_a_small_share_is_quiet() -> None:
    # The model called directly (RS_CALL=1): no Keras inference calls at all.
    assert analyze_records(_loop(0, 0.0), "predict_in_loop") == []
    # One validation predict an epoch on a big batch, even a slow one.
    assert analyze_records(_loop(1, 40.0, rows=10_000), "predict_in_loop") == []
    # Many small predicts, a small share of the time.
    assert analyze_records(_loop(100, 6.0), "predict_in_loop") == []
    # Many predicts of big batches: the time is the model's work.
    assert analyze_records(_loop(100, 50.0, rows=4096), "predict_in_loop") == []


def test_unsized_calls_are_judged_on_their_count_and_time() -> None:
    """A dataset fed to predict has no rows to read: many calls taking most of the time still are."""
    (f,) = analyze_records(_loop(200, 45.0, rows=None), "predict_in_loop")
    assert "rows_per_call" not in f.evidence and "row" not in f.title


def test_at_the_run_s_end_it_says_the_calls_of_the_whole_run() -> None:
    """Said once, at the first epochs that hold it; the report's last word counts the whole
    run: keras.io's character LSTM read "called 50 times ... of window 1" after 300 calls."""
    (f,) = analyze_records(_loop(940, 59.4, epochs=4), "predict_in_loop", episodes=True)
    assert f.evidence["calls"] == 4 * 940 and f.evidence["epochs"] == [0, 3], f.evidence
    assert f.title == (
        "`model.predict()` called 3,760 times inside the training loop (1 row a call, 63ms each): "
        "4 min (99%) of the 4 min of epochs 1-4"
    ), f.title
    assert f.epoch == 0 and f.update == 1, f


def test_the_run_s_end_names_its_windows_of_calls_between_fits_and_their_share_of_the_run() -> None:
    """A generation loop after each of 3 fits: two windows of 50 predicts each, numbered anew
    every round, beside fits of 5 s an epoch."""

    def make(i: int) -> dict[str, Any]:
        if i % 3 == 0:
            return {"seconds": 5.0, "fit": i // 3, "host": syn.host_block(700 * MIB)}
        block = {"calls": 50, "apis": {"predict": 50}, "seconds": 3.8, "rows": 50}
        return {
            "seconds": 3.85,
            "epoch": i % 3 - 1,
            "source": "auto",
            "epoch_source": "inference_calls",
            "inference": {"loops": block},
            "host": syn.host_block(700 * MIB),
        }

    (f,) = analyze_records(syn.trace(9, make), "predict_in_loop", episodes=True)
    assert f.evidence["calls"] == 300 and f.evidence["run_share"] == round(22.8 / 38.1, 4), f.evidence
    assert "epochs" not in f.evidence, f.evidence  # windows 1-2 three times over: no one range
    assert f.title.endswith("22.80s (99%) of the 23.10s of 6 windows; 60% of the run's 38.10s"), f.title
