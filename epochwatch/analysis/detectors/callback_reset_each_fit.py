"""callback_reset_each_fit: EarlyStopping or ReduceLROnPlateau in a loop of one-epoch fits.

keras#20256: `for epoch in range(40): model.fit(..., epochs=1, callbacks=[EarlyStopping(
patience=3, restore_best_weights=True)])`. Keras starts such a callback anew at each fit's
`on_train_begin` (its wait, its best value, its best weights), so inside fits of one epoch
it never waits long enough to act: the loop ran all 40 epochs and kept the last weights
(val_loss 1.677) instead of the best (0.473 at epoch 1). Said once, when at least MIN_FITS
fits of one model in a row each planned one epoch with such a callback.
"""

from __future__ import annotations

import math
from typing import Any

from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import WARNING, Finding
from epochwatch.analysis.view import RunAtEpoch

KIND = "callback_reset_each_fit"
MIN_FITS = 4  # one more than a patience of 3
# What each callback cannot do when it is started anew every epoch.
RESETS = {
    "EarlyStopping": "stop the training or restore its best weights",
    "ReduceLROnPlateau": "lower the learning rate",
}


def _one_epoch(fit: dict[str, Any]) -> bool:
    epochs, initial = fit.get("epochs"), fit.get("initial_epoch", 0)
    return type(epochs) is int and type(initial) is int and epochs - initial == 1


def _resets_in_one_epoch(fit: dict[str, Any]) -> bool:
    """Whether a fit planned one epoch with a callback of RESETS."""
    callbacks = fit.get("callbacks")
    return _one_epoch(fit) and isinstance(callbacks, list) and bool(set(callbacks) & set(RESETS))


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.unit != "epoch" or view.done(KIND, None):
        return []
    loop = view.fits_of_one_model(_resets_in_one_epoch)
    if len(loop) < MIN_FITS:
        return []
    names = sorted(set(RESETS) & {c for f in loop for c in f["callbacks"]})
    cannot = " or ".join(RESETS[n] for n in names)
    numbers = [f.get("fit") for f in loop]
    title = (
        f"{' and '.join(names)} can never {cannot}: {len(loop)} fits of one epoch each in a loop "
        "(fit(epochs=1)), and each fit() starts the callback anew (its wait, its best value)"
    )
    evidence: dict[str, Any] = {"fits": numbers, "callbacks": names, "model": loop[0]["model"].get("name")}
    losses = [value for _fit, value in view.fit_metrics("val_loss", numbers)]
    if len(losses) >= 2:
        best = min(range(len(losses)), key=losses.__getitem__)
        evidence.update(best_val_loss=losses[best], best_fit=numbers[best], val_loss_now=losses[-1])
        if losses[-1] > losses[best] and not math.isclose(losses[-1], losses[best]):
            number = numbers[best]
            at = number + 1 if isinstance(number, int) else best + 1
            title += f"; val_loss was best at fit {at} ({losses[best]:.4g}), {losses[-1]:.4g} now"
    hint = (
        "call fit() once for all the epochs (fit(..., epochs=N, callbacks=[...])), and let the callback "
        "count across them; if the loop must stay (data loaded per epoch, work between epochs), keep the "
        "best value and the patience yourself (or pass the same callback to a fit over a generator of "
        "the data)"
    )
    return [Finding(KIND, WARNING, title, evidence, hint, None, view.epoch_number(view.last))]


DETECTOR = Detector(name=KIND, detect=detect)
