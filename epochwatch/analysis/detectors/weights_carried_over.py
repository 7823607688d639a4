"""weights_carried_over: a search over settings that fits one model, never reset, for each.

keras#16298's grid search (keras#3247, keras#6164): one model built once; for each
learning-rate and batch-size setting a new `compile()` (and `reset_metrics()`, which the
user took for a reset) and a `fit()`. `compile()` keeps the weights, so each setting starts
where the last one stopped: the later ones get 4, 8, ... more epochs, and win. Said where
the fits of one model (`fit_start.model.serial`) try at least MIN_FITS settings, one of
which goes back and forth (a grid, not a schedule: a rate lowered fit by fit is
fine-tuning, which continues on purpose), with the same epochs and trainable weights each,
and each later fit's first epoch begins far below the first fit's (its loss under
CONTINUED of it): the weights carried over. A loop that resets them (`set_weights(w0)`)
starts each fit near the first's loss and is quiet.
"""

from __future__ import annotations

import itertools
from typing import Any

from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import WARNING, Finding
from epochwatch.analysis.run import model_int
from epochwatch.analysis.series import finite_number
from epochwatch.analysis.view import RunAtEpoch

KIND = "weights_carried_over"
MIN_FITS = 3
CONTINUED = 0.7  # a later fit's first-epoch loss under this share of the first fit's
HINT = (
    "compile() keeps a model's weights and reset_metrics() resets only its metrics, so each "
    "setting trained on from the weights the last one left, and the later settings had more "
    "epochs in all: the comparison favours them. Save the initial weights once (w0 = "
    "model.get_weights()) and put them back before each setting (model.set_weights(w0)), or "
    "build the model anew for each (after keras.backend.clear_session())"
)


def _setting(fit: dict[str, Any]) -> tuple[Any, ...]:
    optimizer = fit.get("optimizer")
    optimizer = optimizer if isinstance(optimizer, dict) else {}
    config = optimizer.get("config")
    rate = finite_number(config.get("learning_rate")) if isinstance(config, dict) else None
    return (optimizer.get("class"), None if rate is None else round(rate, 12), fit.get("batch_size"))


def _back_and_forth(values: list[Any]) -> bool:
    """Whether a setting's values over the fits rise and fall (or fall and rise)."""
    steps = [(b > a) - (b < a) for a, b in itertools.pairwise(values) if a is not None and b is not None]
    return 1 in steps and -1 in steps


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.unit != "epoch" or view.done(KIND, None):
        return []
    group = view.fits_of_one_model()
    if len(group) < MIN_FITS:
        return []
    if len({(f.get("epochs"), model_int(f, "trainable_params")) for f in group}) != 1:
        return []  # stages of one training (more epochs, layers unfrozen), not a search
    settings = [_setting(f) for f in group]
    varied = [i for i in range(3) if _back_and_forth([s[i] for s in settings])]
    if not varied or len(set(settings)) < MIN_FITS:
        return []
    numbers = [f.get("fit") for f in group]
    losses: dict[Any, float] = {}
    for fit, loss in view.fit_metrics("loss", numbers):
        losses.setdefault(fit, loss)  # each fit's first epoch's
    if len(losses) < len(numbers) or losses[numbers[0]] <= 0:
        return []
    firsts = [losses[n] for n in numbers]
    base = firsts[0]
    if not all(x < CONTINUED * base for x in firsts[1:]):
        return []
    said = ", ".join(f"{x:.3g}" for x in firsts)
    names = " x ".join(("optimizer", "learning rate", "batch size")[i] for i in varied)
    title = (
        f"{len(group)} fits of one model try {len(set(settings))} settings ({names}), each from the "
        f"weights the last one left: their first epochs' loss {said}, where a fresh start would "
        f"begin near {base:.3g}"
    )
    evidence = {
        "fits": numbers,
        "model": group[0]["model"].get("name"),
        "first_epoch_losses": firsts,
        "settings": [list(s) for s in settings],
        "varied": [("optimizer", "learning_rate", "batch_size")[i] for i in varied],
        "epochs_each": group[0].get("epochs"),
    }
    return [Finding(KIND, WARNING, title, evidence, HINT, None, view.epoch_number(view.last))]


DETECTOR = Detector(name=KIND, detect=detect)
