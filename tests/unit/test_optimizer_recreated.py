"""optimizer_recreated: a custom loop that makes its optimizer anew at every update (tensorflow#42183)."""

from __future__ import annotations

from typing import Any

from bench import synthetic as syn
from tests.support import analyze_records

MIB = syn.MIB


def _loop(replaced: int, steps: int = 40, epochs: int = 20) -> list[dict[str, Any]]:
    """Automatic epochs of `steps` updates, `replaced` new optimizers in each (after the first
    epoch's first), RSS +15 MiB an epoch as the eager Adams' slots pile up."""

    def make(i: int) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "source": "auto",
            "steps": steps,
            "host": syn.host_block(700 * MIB + i * 15 * MIB),
        }
        if replaced:
            rec["optimizers_replaced"] = replaced - (1 if i == 0 else 0)
        return rec

    return syn.trace(epochs, make)


def test_a_new_optimizer_every_update_is_said_once_with_its_memory() -> None:
    found = analyze_records(_loop(40), None)
    kinds = [f.kind for f in found]
    (f,) = [f for f in found if f.kind == "optimizer_recreated"]
    assert f.severity == "warning" and f.target == "optimizer", f
    assert (
        "a new optimizer at nearly every update: 119 made for the same variables over 120 updates" in f.title
    )
    assert "run_functions_eagerly" in f.hint and "once, before the loop" in f.hint
    # One problem, one finding: the RSS the new optimizers hold is said with it.
    assert "host_memory_growth" not in kinds, kinds


def test_one_optimizer_or_one_new_each_epoch_is_not_this_finding() -> None:
    assert "optimizer_recreated" not in [f.kind for f in analyze_records(_loop(0), None)]
    once_an_epoch = [f.kind for f in analyze_records(_loop(1), None)]
    assert "optimizer_recreated" not in once_an_epoch
    assert "host_memory_growth" in once_an_epoch  # a leak beside it is still said


def test_its_eager_steps_are_said_with_it_not_apart() -> None:
    """tensorflow#42183 ran its steps eagerly because of the optimizer made in them: the
    eager_execution info beside this warning was the same problem said twice."""
    records = _loop(40)
    fit = {
        "type": "fit_start",
        "run_id": "synthetic",
        "t": records[0]["t"] + 0.5,
        "fit": 0,
        "source": "optimizer",
    }
    records.insert(1, {**fit, "functions_run_eagerly": True})
    kinds = [f.kind for f in analyze_records(records, None)]
    assert "optimizer_recreated" in kinds and "eager_execution" not in kinds, kinds
    alone = _loop(0)
    alone.insert(1, {**fit, "functions_run_eagerly": True})
    assert "eager_execution" in [f.kind for f in analyze_records(alone, None)]
