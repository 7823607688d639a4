"""Passes over a dataset, seen without help: the epochs of loops that mark none.

A custom loop's epoch is usually `for batch in dataset:`; each `for` starts a new
iterator. So a new iterator over the dataset that fed the steps marks the end of one
pass and the start of the next (`AutoEpochs.pass_started`; the last pass ends with the
run). Wrapped: `tf.data.Dataset.__iter__` (eager only), Keras 3's `PyDataset.__iter__`
and PyTorch's `DataLoader.__iter__`; once per pass, never per batch.

A tf.data pass is keyed by what its dataset was built from (`tf_pass_key`, a
`recorder/pass_keys.PassKey`): a loop that iterates `train_ds.enumerate()` or
`ds.shuffle(k).batch(b)` made anew each epoch makes a new object each pass, over the same
source. The walk to the sources reads `_inputs()` (tf.data's own list of a dataset's
inputs: dataset_graph.py), once per pass; any error, or a bigger
graph, keys the pass by the object itself, as before. PyDataset and DataLoader passes are
keyed by the object.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch.integrations.dataset_graph import nodes
from epochwatch.recorder.pass_keys import PassKey

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "automatic epochs"


def tf_pass_key(dataset: Any) -> Any:
    """The pass's key: the dataset's recipe and sources, or the dataset itself when its
    inputs cannot be read or are too many to walk."""
    graph = nodes(dataset)
    if graph is None:
        return dataset
    recipe = tuple(f"{n.depth}:{n.name}" for n in graph)
    return PassKey(recipe, tuple(n.dataset for n in graph if n.source))


def wrap_iter(
    original: Callable[..., Any],
    recorder: Recorder,
    eager: Callable[[], bool] | None = None,
    key: Callable[[Any], Any] | None = None,
) -> Callable[..., Any]:
    auto, guard = recorder.auto, recorder.guard

    @functools.wraps(original)
    def __iter__(self: Any) -> Any:
        if not auto.off and (eager is None or eager()):
            guard.run(PART, lambda: auto.pass_started(self, key), None)
        return original(self)

    __iter__.__epochwatch__ = True  # type: ignore[attr-defined]
    return __iter__


def install_tf(recorder: Recorder) -> None:
    from tensorflow.python.data.ops import dataset_ops
    from tensorflow.python.eager import context

    cls = dataset_ops.DatasetV2
    if not getattr(cls.__iter__, "__epochwatch__", False):
        cls.__iter__ = wrap_iter(cls.__iter__, recorder, context.executing_eagerly, tf_pass_key)


def install_keras(recorder: Recorder) -> None:
    from keras.utils import PyDataset

    if not getattr(PyDataset.__iter__, "__epochwatch__", False):
        PyDataset.__iter__ = wrap_iter(PyDataset.__iter__, recorder)


def install_torch(recorder: Recorder) -> None:
    from torch.utils.data import DataLoader

    if not getattr(DataLoader.__iter__, "__epochwatch__", False):
        DataLoader.__iter__ = wrap_iter(DataLoader.__iter__, recorder)
