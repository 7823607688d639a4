"""weights_carried_over on a loop of fits of one model (analysis/detectors/weights_carried_over.py).

The first-epoch losses are keras#16298's grid search, run with the hook (bench/real_scripts/
keras16298_gridsearch_weights_not_reset.py): 0.646, 0.136, 0.082 ... carried over, and
0.646, 0.673, 0.682 ... with `model.set_weights(w0)` before each setting.
"""

from __future__ import annotations

from typing import Any

from bench import synthetic as syn
from epochwatch.analysis.engine import analyze
from epochwatch.analysis.run import Run

CARRIED = [0.646, 0.136, 0.082, 0.063, 0.053, 0.049]
RESET = [0.646, 0.673, 0.682, 0.694, 0.705, 0.717]
GRID = [(3e-3, 64), (3e-3, 128), (1e-3, 64), (1e-3, 128), (3e-4, 64), (3e-4, 128)]


def _found(
    losses: list[float], settings: list[tuple[float, int]], epochs: list[int] | None = None
) -> list[Any]:
    run = Run("t")
    run.add(syn.run_start("t"))
    t = syn.T0 + 1
    for k, ((rate, batch), loss) in enumerate(zip(settings, losses, strict=True)):
        model = {"name": "sequential", "class": "Sequential", "serial": 0, "trainable_params": 4929}
        optimizer = {"class": "Adam", "config": {"name": f"adam_{k}", "learning_rate": rate}}
        planned = epochs[k] if epochs else 4
        run.add(
            {"type": "fit_start", "run_id": "t", "t": t, "fit": k, "model": model, "optimizer": optimizer}
            | {"batch_size": batch, "epochs": planned}
        )
        for e in range(planned):
            run.add(syn.epoch_record("t", e, t, 1.0, fit=k, metrics={"loss": loss * 0.8**e}))
            t += 1
    return [f for f in analyze(run) if f.kind == "weights_carried_over"]


def test_a_grid_search_over_one_model_never_reset_is_said_with_its_losses() -> None:
    (f,) = _found(CARRIED, GRID)
    assert f.severity == "warning" and f.evidence["fits"] == [0, 1, 2], f.evidence
    assert "3 fits of one model try 3 settings (batch size)" in f.title, f.title
    assert "0.646, 0.136, 0.082" in f.title and "model.set_weights(w0)" in f.hint


def test_fits_that_start_afresh_or_continue_on_purpose_are_quiet() -> None:
    assert _found(RESET, GRID) == []  # set_weights(w0) before each setting
    schedule = [(1e-3, 64), (3e-4, 64), (1e-4, 64), (3e-5, 64)]  # a rate lowered fit by fit
    assert _found(CARRIED[:4], schedule) == []
    assert _found(CARRIED, GRID, epochs=[4, 4, 8, 4, 4, 4]) == []  # stages, not a search
    assert _found(CARRIED[:2], GRID[:2]) == []  # two fits: too few to tell
