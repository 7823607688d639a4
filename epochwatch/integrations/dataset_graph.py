"""A tf.data pipeline's nodes, from the dataset fit or a loop got down to its sources.

tf.data keeps each dataset's inputs on the Python object (`_inputs()`), so the pipeline can
be read without running it: what a pass over a dataset is a pass of (data_passes.py), and
whether its pipeline can run once more for the input fingerprint (inputs.py). Bounded: a
real pipeline has a few to twenty nodes, about 3 us each to read.
"""

from __future__ import annotations

from typing import Any, NamedTuple

MAX_NODES = 64


class Node(NamedTuple):
    depth: int  # 0: the dataset itself; its inputs 1; theirs 2...
    name: str  # the class name without its leading underscore: "ShuffleDataset"
    dataset: Any
    source: bool  # it has no inputs (from_tensor_slices, range, a file reader...)


def nodes(dataset: Any) -> list[Node] | None:
    """The nodes depth-first, each before its inputs (in their order); None when the
    pipeline has over MAX_NODES nodes or a node's inputs cannot be read."""
    out: list[Node] = []
    todo: list[tuple[int, Any]] = [(0, dataset)]
    try:
        while todo:
            if len(out) >= MAX_NODES:
                return None
            depth, node = todo.pop()
            inputs = list(node._inputs())
            out.append(Node(depth, type(node).__name__.lstrip("_"), node, not inputs))
            todo.extend((depth + 1, i) for i in reversed(inputs))
    except Exception:  # a dataset class without (a working) _inputs
        return None
    return out
