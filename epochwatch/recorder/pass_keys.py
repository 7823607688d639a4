"""Which dataset a pass is over: the same object, or one derived anew from the same source.

Automatic epochs are cut by passes over the dataset that fed the steps (auto_epochs.py).
Many loops build that dataset anew each epoch from the same source: TF's pix2pix tutorial
iterates `train_ds.enumerate()`, others `ds.take(n)` or `ds.shuffle(k).batch(b)` inside
the epoch loop. Each is a new object, so identity alone never sees a second pass and the
whole run became one epoch. A `PassKey` names a pass by how the dataset was built (its
`recipe`: the node types, from the dataset down to its sources) and what from (its
`roots`, the source objects). Two passes are over one dataset when the recipes are equal
and a root is shared (`enumerate` adds a fresh counter root each time; the data's source
is the one that stays). A validation set (other sources, or another recipe over the same
source: `take` against `skip`) and a fresh `from_tensor_slices` per round (new sources:
new data) stay datasets of their own, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, eq=False)
class PassKey:
    recipe: tuple[str, ...]  # the node types, depth-first (the tree's shape in the names)
    roots: tuple[Any, ...]  # the source objects, compared by identity (held, as the dataset was)


def same_dataset(key: Any, other: Any) -> bool:
    """Whether passes keyed `key` and `other` are passes over one dataset."""
    if key is other:
        return True
    if not isinstance(key, PassKey) or not isinstance(other, PassKey) or key.recipe != other.recipe:
        return False
    return any(r is s for r in key.roots for s in other.roots)
