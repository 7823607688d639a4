"""resume_trains_nothing: the fit after a restore plans no epoch.

Keras' `fit(epochs=N, initial_epoch=k)` trains epochs k .. N-1: `epochs` is the number the
last epoch reaches, not how many more to train. A resume that asks for "3 more" with
`initial_epoch=3, epochs=3` (keras#4836, keras#1872) trains none: the fit returns at once,
and the script goes on as if it had trained. Said at the fit's start, where the plan is
known (the hook's restore checks run after each fit_start: checkpoints/resume.py).
"""

from __future__ import annotations

import os

from epochwatch.analysis.findings import WARNING, Finding
from epochwatch.analysis.restore.resume import Resume

KIND = "resume_trains_nothing"


def check_planned(r: Resume) -> list[Finding]:
    fit = r.child_fit or {}
    epochs, initial = fit.get("epochs"), fit.get("initial_epoch")
    if type(epochs) is not int or type(initial) is not int or initial < epochs:
        return []
    name = os.path.basename(r.target)
    title = (
        f"The fit after restoring {name} trains no epoch: fit(epochs={epochs}, initial_epoch={initial}) "
        f"trains the epochs after {initial} up to {epochs}: none"
    )
    hint = (
        f"Keras' `epochs` is the number the last epoch reaches, not how many more to train: to train N more "
        f"after epoch {initial}, pass initial_epoch={initial}, epochs={initial}+N (e.g. epochs={initial + 3} for "
        "3 more)"
    )
    evidence = {"path": r.target, "epochs": epochs, "initial_epoch": initial, "fit": fit.get("fit")}
    return [Finding(KIND, WARNING, title, evidence, hint, r.target, None)]
