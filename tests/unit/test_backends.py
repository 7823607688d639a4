"""The framework-neutral parts of the JAX and PyTorch support, without JAX or PyTorch.

What the integrations hand to the analysis (retrace causes, what a checkpoint holds, the
allocator blocks, the run's framework) is plain data, so it is tested here on plain data;
the real frameworks are exercised in tests/integration/test_backends.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from epochwatch.analysis import frameworks
from epochwatch.analysis import restore as restore_analysis
from epochwatch.analysis.restore.lineage import build_lineage
from epochwatch.analysis.series import EpochSeries
from epochwatch.integrations.jax import explain
from epochwatch.integrations.torch import explain_guard
from epochwatch.integrations.torch_saving import describe
from tests.unit.restore_records import child_records, make_run, parent_records


def test_framework_comes_from_the_keras_backend_then_from_what_was_imported() -> None:
    assert frameworks.framework({"env": {"keras_backend": "jax", "frameworks": ["keras", "jax"]}}) == "jax"
    assert frameworks.framework({"env": {"frameworks": ["torch"]}}) == "torch"
    assert frameworks.framework({"env": {"frameworks": ["tensorflow", "torch"]}}) == "tensorflow"
    assert frameworks.framework({"env": {}}) == "tensorflow"  # traces from before the field
    assert frameworks.framework(None) == "tensorflow"


def test_hints_speak_the_framework_and_fall_back_to_the_tensorflow_wording() -> None:
    tf = frameworks.hint("gpu_memory_growth", "tensorflow", "TF words")
    torch = frameworks.hint("gpu_memory_growth", "torch", "TF words")
    assert tf == "TF words"
    assert "memory_allocated" in torch and "tf." not in torch
    shape = frameworks.hint("retrace_storm:shape", "jax", "x", arg="data[0]", was="f32[8]", now="f32[9]")
    assert "`data[0]`" in shape and "f32[8] -> f32[9]" in shape
    assert frameworks.hint("no_such_topic", "jax", "default") == "default"


def test_jax_cause_names_the_argument_whose_shape_changed() -> None:
    was = [((4, 3), "float32"), ((8, 4), "float32")]
    now = [((4, 3), "float32"), ((9, 4), "float32")]
    names = ("state[0]", "data[0]")
    assert explain(None, now, names)[0]["change"] == "new"
    assert explain(was, now, names) == [
        {"arg": "data[0]", "change": "shape", "was": "float32[8, 4]", "now": "float32[9, 4]"}
    ]
    assert explain(was, [((4, 3), "float32"), ((8, 4), "bfloat16")], None)[0]["change"] == "dtype"
    assert explain(was, now[:1], names)[0]["change"] == "structure"


def test_torch_guard_failures_become_causes() -> None:
    shape = explain_guard("0/0: tensor 'x' size mismatch at index 0. expected 8, actual 9")
    assert shape == {"arg": "x", "change": "shape", "was": "8", "now": "9"}
    dtype = explain_guard("0/1: tensor 'L['batch']' dtype mismatch. expected Float, actual Half")
    assert dtype["change"] == "dtype"
    value = explain_guard("0/0: scale == 0.5  # return (x * scale).sum()  # train.py:6 in step")
    assert value == {"arg": "scale", "change": "value", "was": "0.5", "now": "another value"}
    assert explain_guard("something else entirely")["change"] == "guard"


def test_what_a_torch_checkpoint_holds_is_read_from_the_object() -> None:
    weights = {"0.weight": np.zeros((2, 2)), "0.bias": np.zeros(2)}
    optimizer = {
        "state": {0: {"step": np.float32(64), "exp_avg": np.zeros(2)}},
        "param_groups": [{"lr": 0.1}],
    }
    scheduler = {"last_epoch": 8, "base_lrs": [0.05], "_step_count": 9}
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000}
    assert describe(weights) == {"contents": ["model"], "optimizer_included": False}
    full = describe(
        {"model": weights, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler, "epoch": 8}
    )
    assert full == {
        "contents": ["model", "optimizer", "scaler", "scheduler"],
        "optimizer_included": True,
        "optimizer_steps_in_file": 64,
    }
    fresh = describe({"model": weights, "optimizer": {"state": {}, "param_groups": []}})
    assert fresh["optimizer_included"] and "optimizer_steps_in_file" not in fresh
    assert describe("not a checkpoint") == {"contents": [], "optimizer_included": False}


def test_framework_allocators_feed_the_device_memory_columns() -> None:
    series = EpochSeries()
    for n, (jax_bytes, torch_bytes) in enumerate([(1, 10), (2, 20)]):
        series.add_epoch(
            {
                "type": "epoch",
                "epoch": n,
                "seconds": 1.0,
                "jax_memory": {"CPU:0": {"current_bytes": jax_bytes, "source": "jax live_arrays"}},
                "torch_memory": {
                    "GPU:0": {"current_bytes": torch_bytes, "peak_bytes": 30, "reserved_bytes": 64}
                },
            }
        )
    assert sorted(series.keys("tf_current")) == ["CPU:0", "GPU:0"]
    assert series.value("tf_current", 1, "GPU:0") == 20
    assert series.allocator_sources == {"CPU:0": "jax live_arrays", "GPU:0": "torch.cuda allocator"}


def _torch_resume(start_step: int) -> list[dict[str, Any]]:
    """parent_records()/child_records() as a PyTorch loop writes them: format torch, and epochs
    that count optimizer steps apart from logged batches (here 2 batches per step)."""
    parent = parent_records()
    for rec in parent:
        if rec["type"] == "run_start":
            rec["env"]["frameworks"] = ["torch"]
        if rec["type"] == "save":
            rec.update(format="torch", api="torch.save", optimizer_included=False, contents=["model"])
    child = child_records(
        restore_over={
            "format": "torch",
            "api": "torch.load",
            "optimizer_included": False,
            "contents": ["model"],
        },
        start_step=start_step,
    )
    for rec in child:
        if rec["type"] == "run_start":
            rec["env"]["frameworks"] = ["torch"]
        if rec["type"] == "restore":
            for key in ("optimizer", "iterations", "file_iterations", "written_with"):
                rec.pop(key, None)
        if rec["type"] == "epoch":
            rec["optimizer_steps"] = rec["steps"]
            rec["steps"] = 2 * rec["steps"]  # logged batches: accumulation over two
    return parent + child


def test_a_torch_resume_without_optimizer_state_is_judged_like_a_keras_one() -> None:
    records = _torch_resume(start_step=0)
    parent = make_run([r for r in records if r["run_id"] == "parent"])
    child = make_run([r for r in records if r["run_id"] == "child"])
    found = [f.to_dict() for f in restore_analysis.detect(child, build_lineage([parent, child]))]
    opt = next(f for f in found if f["kind"] == "optimizer_state_not_restored")
    assert opt["evidence"]["steps_at_save"] == 500 and opt["evidence"]["steps_after_restore"] == 0
    assert "optimizer.load_state_dict" in opt["hint"]


def test_a_torch_resume_that_continues_the_step_count_is_clean() -> None:
    records = _torch_resume(start_step=500)
    parent = make_run([r for r in records if r["run_id"] == "parent"])
    child = make_run([r for r in records if r["run_id"] == "child"])
    kinds = {f.kind for f in restore_analysis.detect(child, build_lineage([parent, child]))}
    assert "optimizer_state_not_restored" not in kinds
