"""weights_not_restored on the `unmatched` a tf.train.Checkpoint restore record carries
(analysis/restore/unmatched.py; the hook's side in tests/integration/test_restore_apis.py)."""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.restore.resume import Resume
from epochwatch.analysis.restore.unmatched import check_unmatched
from epochwatch.analysis.run import Run


def _found(unmatched: Any) -> list[Any]:
    restore = {"type": "restore", "api": "tf.train.Checkpoint.restore", "path": "/ck/ckpt-6"}
    restore["unmatched"] = unmatched
    return check_unmatched(Resume(Run("t"), restore, None, None))


def _missed(params: int, keys: list[str], unused: list[str]) -> dict[str, Any]:
    return {
        "variables": 6,
        "parameters": params,
        "variables_total": 10,
        "parameters_total": 20869,
        "keys": keys,
        "file_keys_unused": unused,
    }


def test_a_renamed_key_that_left_the_model_unrestored_is_said_with_both_names() -> None:
    (f,) = _found(_missed(20865, ["model"], ["net"]))
    assert f.kind == "weights_not_restored" and f.severity == "warning" and f.target == "/ck/ckpt-6"
    assert "left 6 of 10 variables (20,865 of 20,869 parameters, in `model`)" in f.title, f.title
    assert "the checkpoint's `net` matched nothing here" in f.title
    assert "tf.train.Checkpoint(net=" in f.hint and "assert_existing_objects_matched()" in f.hint


def test_a_partial_restore_that_can_be_meant_is_left_alone() -> None:
    assert _found(_missed(5000, ["head"], [])) == []  # a new head on a restored backbone
    assert _found(_missed(15000, ["optimizer"], [])) == []  # the optimizer's: its own finding
    assert _found(None) == [] and _found({"parameters": "many"}) == []  # none, or garbage
    (f,) = _found(_missed(20865, ["model"], []))  # saved without the model at all
    assert "holds no values for model" in f.hint


def test_a_variable_the_checkpoint_holds_a_value_for_is_said_whatever_its_share() -> None:
    """tensorflow#39593: a Keras 3 layer built after a deferred restore makes a new kernel;
    the checkpoint's value at its path never reaches it (8,192 of 12,000 parameters here, a
    share a new head could have): said, with the path and the fix to build first."""
    missed = _missed(500, ["net"], [])
    missed["with_values"] = {"variables": 1, "parameters": 8192, "paths": ["net/l1/_kernel"]}
    (f,) = _found(missed)
    assert "left 1 variable (8,192 parameters: net/l1/_kernel)" in f.title, f.title
    assert "holds values for them" in f.title and "before restore()" in f.hint and "assert_consumed" in f.hint
