"""Whose tf.function is it: the user's and Keras' step functions, or tf.data / tf.distribute's.

tf.data traces its own functions (`Dataset_map_*` for each map, `_init_func`, `_next_func`,
`_finalize_func` for every `from_generator` iterator, which Keras uses to feed arrays to a
distribution strategy, and their `_remote_*` twins for multi-device iterators) anew for
each new iterator, that is every epoch. Those traces are part of how the input pipeline
works, cost little, and the user cannot "fix" them; a retrace storm about them would fail
a healthy CI run. So the retrace detector judges only the other functions, while the
epoch table still counts every trace.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Exact names that tf.data (from_generator) and tf.distribute give the functions they trace.
_INTERNAL_NAMES = frozenset({"_init_func", "_next_func", "_finalize_func"})
# Prefixes: tf.data's functions for map/filter/flat_map..., and multi-device (remote) copies.
_INTERNAL_PREFIXES = ("Dataset_", "_remote_")


def origin(name: str) -> str:
    """ "tf.data" for the input pipeline's own functions, else "model" (the user's or Keras')."""
    if name in _INTERNAL_NAMES or name.startswith(_INTERNAL_PREFIXES):
        return "tf.data"
    return "model"


def judged(name: str) -> bool:
    """Whether the retrace detector should judge this function's traces."""
    return origin(name) == "model"


# Functions TF's SavedModel writer traces for every tf.saved_model.save (Keras' model.export
# calls it): the saver's `_traced_save` / `_traced_restore` (functional_saver.to_proto, only
# for a SavedModel's saver_def), a `signature_wrapper_<name>` per signature, and the
# `serving_default` endpoint model.export builds. A model exported every epoch traces them
# (and the model's `__call__`) anew each time: the export's cost, not a function created
# anew in the loop (retrace_storm groups them).
_SAVED_MODEL_NAMES = frozenset({"_traced_save", "_traced_restore", "serving_default"})
_SAVED_MODEL_PREFIXES = ("signature_wrapper_",)

# The functions Keras' fit/evaluate/predict trace for a model (Keras 3 on TF and on JAX,
# tf_keras): each compile() (and each new model) makes new ones, traced in the first epoch
# of the fit after it; recompiling in a loop of fits is models_in_loop's, not a storm's.
KERAS_FIT_FUNCTIONS = frozenset(
    {
        "one_step_on_data",
        "one_step_on_iterator",
        "multi_step_on_iterator",
        "one_step_on_data_distributed",
        "multi_step_on_data",
        "train_function",
        "test_function",
        "predict_function",
        "step_function",
        "train_step",
        "test_step",
        "predict_step",
        "initialize_variables",
    }
)


def saved_model_own(name: str) -> bool:
    """Whether `name` is one of the functions the SavedModel writer traces for each save."""
    return name in _SAVED_MODEL_NAMES or name.startswith(_SAVED_MODEL_PREFIXES)


def judged_new(retraces: Any, total: float) -> float:
    """New traces of the judged functions in a record's `retraces` block, not tf.data's: a
    `predict` call traces its new dataset's functions (three a call), so a healthy loop of
    predictions read as a thousand retraces and its warm-up as still settling. `total`
    where the block names no function (an older trace)."""
    functions = retraces.get("functions") if isinstance(retraces, Mapping) else None
    if not isinstance(functions, Mapping):
        return total
    new = 0.0
    for name, block in functions.items():
        n = block.get("new") if isinstance(block, Mapping) else None
        if judged(str(name)) and isinstance(n, int | float) and not isinstance(n, bool) and n > 0:
            new += n if math.isfinite(n) else 0.0
    return new
