"""resume_trains_nothing on the fit_start after a restore (analysis/restore/planned.py).

keras#4836's resume: `load_model`, then `fit(epochs=3, initial_epoch=3)` to train "3 more",
which trains none (optimizer step 402 -> 402); said live at the fit's start
(bench/real_scripts/keras4836_initial_epoch_trains_nothing.py).
"""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.restore.planned import check_planned
from epochwatch.analysis.restore.resume import Resume
from epochwatch.analysis.run import Run


def _found(epochs: Any, initial: Any) -> list[Any]:
    restore = {"type": "restore", "api": "keras.saving.load_model", "path": "/ck/test_resume.keras"}
    fit = {"type": "fit_start", "fit": 0, "epochs": epochs, "initial_epoch": initial}
    return check_planned(Resume(Run("t"), restore, None, None, child_fit=fit))


def test_a_resume_whose_epochs_end_where_it_starts_trains_nothing() -> None:
    (f,) = _found(3, 3)
    assert (
        f.kind == "resume_trains_nothing" and f.severity == "warning" and f.target == "/ck/test_resume.keras"
    )
    assert "fit(epochs=3, initial_epoch=3)" in f.title and "trains no epoch" in f.title, f.title
    assert "epochs=6 for 3 more" in f.hint
    assert _found(2, 3)  # past it, too


def test_a_resume_that_plans_epochs_or_says_nothing_of_them_is_quiet() -> None:
    assert _found(6, 3) == [] and _found(3, 0) == []
    assert _found(None, 3) == [] and _found("3", "3") == [] and _found(True, True) == []
