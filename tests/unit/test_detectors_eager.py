"""eager_execution: a fit (or a custom loop's tf.functions) left running eagerly."""

from __future__ import annotations

from typing import Any

from bench import synthetic as syn
from tests.support import analyze_records

RUN = "synthetic"


def _fit(fit: int, t: float, **fields: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "type": "fit_start",
        "run_id": RUN,
        "t": t,
        "fit": fit,
        "backend": "tensorflow",
        "model": {"name": "m", "class": "Sequential", "serial": 0},
        "epochs": 4,
        "steps_per_epoch": 10,
    }
    rec.update(fields)
    return {k: v for k, v in rec.items() if v is not None}


def _fits(*settings: dict[str, Any], epochs: int = 4, seconds: float = 2.0) -> list[dict[str, Any]]:
    """One fit of `epochs` epochs per settings dict, each preceded by its fit_start."""
    out: list[dict[str, Any]] = [syn.run_start(RUN)]
    t = syn.T0 + 1.0
    for n, fields in enumerate(settings):
        out.append(_fit(n, t, **fields))
        for i in range(epochs):
            out.append(syn.epoch_record(RUN, i, t, seconds, fit=n))
            t += seconds
    out.append({"type": "run_end", "run_id": RUN, "t": t, "ended": "completed"})
    return out


def _eager(records: list[dict[str, Any]]) -> list[Any]:
    return analyze_records(records, "eager_execution")


def test_compile_run_eagerly_is_said_once_at_the_first_epoch() -> None:
    found = _eager(_fits({"run_eagerly": True, "functions_run_eagerly": False}))
    assert len(found) == 1
    f = found[0]
    assert (f.severity, f.target, f.epoch) == ("info", None, 0)
    assert "runs eagerly (compile(run_eagerly=True))" in f.title and "200ms a step" in f.title
    assert "remove run_eagerly=True" in f.hint and "tf.function" in f.hint
    assert f.evidence["settings"] == ["run_eagerly"] and f.evidence["fit"] == 0
    assert f.evidence["step_seconds_median"] == 0.2


def test_the_global_flag_is_said_with_its_own_fix() -> None:
    found = _eager(_fits({"run_eagerly": False, "functions_run_eagerly": True}))
    assert [f.evidence["settings"] for f in found] == [["tf.config.run_functions_eagerly"]]
    assert "tf.config.run_functions_eagerly(True)" in found[0].title
    assert found[0].hint.startswith("remove tf.config.run_functions_eagerly(True)")


def test_healthy_graph_fits_are_quiet() -> None:
    assert _eager(_fits({"run_eagerly": False, "functions_run_eagerly": False})) == []
    assert _eager(_fits({})) == []  # older traces: nothing recorded, nothing said


def test_backends_where_it_means_something_else_are_quiet() -> None:
    # torch: eager is Keras's default there; the TF flag does not touch JAX's or torch's steps
    assert _eager(_fits({"backend": "torch", "run_eagerly": True})) == []
    assert _eager(_fits({"backend": "jax", "run_eagerly": False, "functions_run_eagerly": True})) == []
    # tf_keras layers built dynamic=True can only run eagerly: no fix to offer
    assert _eager(_fits({"backend": None, "run_eagerly": True, "dynamic": True})) == []


def test_jax_run_eagerly_skips_jit() -> None:
    found = _eager(_fits({"backend": "jax", "run_eagerly": True}))
    assert len(found) == 1 and "jax.jit" in found[0].hint


def test_one_finding_for_a_run_of_eager_fits_at_the_first_eager_one() -> None:
    found = _eager(_fits({"run_eagerly": False}, {"run_eagerly": True}, {"run_eagerly": True}))
    assert len(found) == 1
    assert found[0].epoch == 0 and found[0].evidence["fit"] == 1  # the second fit's first epoch


def test_a_custom_loop_under_the_global_flag() -> None:
    """Automatic epochs name no fit: the loop's fit_start (written at the optimizer's first
    update) before the epoch ended is the one."""
    records: list[dict[str, Any]] = [syn.run_start(RUN)]
    t = syn.T0 + 1.0
    auto = {"source": "optimizer", "model": {"serial": 0, "name": "Adam"}, "optimizer": {"class": "Adam"}}
    records.append(
        {"type": "fit_start", "run_id": RUN, "t": t + 0.01, "fit": 0, **auto, "functions_run_eagerly": True}
    )
    for i in range(3):
        rec = syn.epoch_record(RUN, i, t, 0.7, source="auto", epoch_source="data_pass")
        del rec["fit"]
        records.append(rec)
        t += 0.7
    found = _eager(records)
    assert len(found) == 1 and found[0].epoch == 0
    assert found[0].title.startswith(
        "the loop's tf.function steps run eagerly (tf.config.run_functions_eagerly(True))"
    )
    assert "fit" not in found[0].evidence and "the loop's @tf.function steps included" in found[0].hint
    quiet = [r if r["type"] != "fit_start" else {**r, "functions_run_eagerly": False} for r in records]
    assert _eager(quiet) == []
