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
