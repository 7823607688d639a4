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
