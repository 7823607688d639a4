"""What a `tf.train.Checkpoint` restore left without a value, read from its load status.

TF matches a checkpoint to the program's objects by the names they are tracked under. Rename
one (`tf.train.Checkpoint(net=model)` saved, `Checkpoint(model=model)` restored:
tensorflow#42272, acme#106) and the restore matches the step counter and the optimizer's
`iterations` but none of the model's weights; TF warns only at exit, and `expect_partial()`,
which users add to silence pages of "Unresolved object in checkpoint", hides that too. The
run then trains from its initial weights while its step counter says it resumed.

The status knows at restore time: the objects the program already holds (variables created
before the restore) that no checkpoint node matched, which is what
`status.assert_existing_objects_matched()` raises on. Objects made after the restore are
restored as they are created (TF's deferred restore) and are not counted. Reads TF's private
attributes and never raises: a TF without them gives None.
"""

from __future__ import annotations

import math
from typing import Any

NAMES = 8  # keys named in the record at most


def unmatched(status: Any) -> dict[str, Any] | None:
    """{variables, parameters, variables_total, parameters_total, keys, file_keys_unused} of a
    restore that left existing variables without a value, else None. `keys`: the program's
    names (under the Checkpoint) that hold them; `file_keys_unused`: the checkpoint's own
    top-level names that nothing in the program matched (a renamed key shows on both);
    `with_values` {variables, parameters, paths}: those the checkpoint holds a value for at
    their own path, which they did not get."""
    try:
        from tensorflow.python.checkpoint import checkpoint as tf_checkpoint

        loaded = status._checkpoint
        objects, paths = status._object_graph_view.breadth_first_traversal()
        matched = {id(o) for o in loaded.object_by_proto_id.values()}
        saveable = list(tf_checkpoint._objects_with_attributes(objects))
        # The Checkpoint's own counter, which write() does not save, is no program state.
        saveable = [o for o in saveable if [r.name for r in paths.get(o) or ()][:1] != ["save_counter"]]
        missed = [o for o in saveable if id(o) not in matched]
        if not missed:
            return None
        keys = sorted({paths[o][0].name for o in missed if paths.get(o)})
        root = loaded.object_graph_proto.nodes[0]
        unused = sorted(
            c.local_name
            for c in root.children
            if c.node_id not in loaded.object_by_proto_id and c.local_name != "save_counter"
        )
        held = [o for o in missed if _has_value(loaded.object_graph_proto, paths.get(o) or ())]
        out: dict[str, Any] = {
            "variables": len(missed),
            "parameters": sum(_size(o) for o in missed),
            "variables_total": len(saveable),
            "parameters_total": sum(_size(o) for o in saveable),
            "keys": keys[:NAMES],
            "file_keys_unused": unused[:NAMES],
        }
        if held:
            out["with_values"] = {
                "variables": len(held),
                "parameters": sum(_size(o) for o in held),
                "paths": sorted("/".join(r.name for r in paths[o]) for o in held)[:NAMES],
            }
        return out
    except Exception:  # another TF's internals, or no object-based status: nothing to tell
        return None


def _has_value(graph: Any, path: Any) -> bool:
    """Whether the checkpoint holds a value at `path` (the program's names from the root):
    then the variable there was meant to get it. A variable the checkpoint has no place for
    (a new head, a renamed key) is not one."""
    node = graph.nodes[0]
    for ref in path:
        child = next((c for c in node.children if c.local_name == ref.name), None)
        if child is None:
            return False
        node = graph.nodes[child.node_id]
    return bool(path) and len(node.attributes) > 0


def _size(variable: Any) -> int:
    shape = getattr(variable, "shape", None)
    try:
        return math.prod(int(d) for d in shape) if shape is not None else 0
    except (TypeError, ValueError):  # an unknown dimension
        return 0
