"""callback_reset_each_fit on loops of one-epoch fits (analysis/detectors/callback_reset_each_fit.py).

The val_loss values are keras#20256's loop run with the hook (bench/real_scripts/
keras20256_earlystop_fit_loop.py): best at the first fit, worse after, and an
EarlyStopping(patience=3, restore_best_weights=True) that never acted.
"""

from __future__ import annotations

from typing import Any

from bench import synthetic as syn
from epochwatch.analysis.engine import analyze
from epochwatch.analysis.run import Run

VAL_LOSS = [0.4733, 0.5012, 0.5524, 0.6291, 0.7008, 0.8102]


def _found(callbacks: list[str], epochs: int = 1, serials: list[int] | None = None) -> list[Any]:
    run = Run("t")
    run.add(syn.run_start("t"))
    t = syn.T0 + 1
    for k, val in enumerate(VAL_LOSS):
        model = {"name": "sequential", "class": "Sequential", "serial": serials[k] if serials else 0}
        run.add(
            {"type": "fit_start", "run_id": "t", "t": t, "fit": k, "model": model, "callbacks": callbacks}
            | {"epochs": epochs, "initial_epoch": 0}
        )
        for e in range(epochs):
            run.add(syn.epoch_record("t", e, t, 1.0, fit=k, metrics={"loss": 0.3, "val_loss": val}))
            t += 1
    return [f for f in analyze(run) if f.kind == "callback_reset_each_fit"]


def test_early_stopping_in_a_loop_of_one_epoch_fits_is_said_with_its_best_epoch() -> None:
    (f,) = _found(["EarlyStopping", "ModelCheckpoint"])
    assert f.severity == "warning" and f.evidence["fits"] == [0, 1, 2, 3], f.evidence
    assert f.title.startswith("EarlyStopping can never stop the training or restore its best weights")
    assert "val_loss was best at fit 1 (0.4733), 0.6291 now" in f.title, f.title
    assert "fit() once for all the epochs" in f.hint
    (f,) = _found(["ReduceLROnPlateau"])
    assert "can never lower the learning rate" in f.title


def test_fits_the_callback_can_act_in_or_without_one_are_quiet() -> None:
    assert _found(["EarlyStopping"], epochs=5) == []  # each fit long enough to stop in
    assert _found(["ModelCheckpoint", "TensorBoard"]) == []  # nothing that waits across epochs
    assert _found(["EarlyStopping"], serials=[0, 1, 2, 3, 4, 5]) == []  # a new model each fit
