"""Passes over a dataset, seen without help: the epochs of loops that mark none.

A custom loop's epoch is usually `for batch in dataset:`; each `for` starts a new
iterator. So a new iterator over the dataset that fed the steps marks the end of one
pass and the start of the next (`AutoEpochs.pass_started`; the last pass ends with the
run). Wrapped: `tf.data.Dataset.__iter__` (eager only) and tf.distribute's distributed
datasets', Keras 3's `PyDataset.__iter__` and PyTorch's `DataLoader.__iter__`; once per
pass, never per batch.

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
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch.integrations.dataset_graph import nodes
from epochwatch.recorder.pass_keys import PassKey

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "automatic epochs"
# Set while a wrapped __iter__ runs: a tf.distribute dataset iterates a tf.data dataset it
# builds anew inside its own __iter__, a pass of the same pass, not one of its own.
_inside = threading.local()


def tf_pass_key(dataset: Any) -> Any:
    """The pass's key: the dataset's recipe and sources, or the dataset itself when its
    inputs cannot be read or are too many to walk."""
    graph = nodes(dataset)
    if graph is None:
        return dataset
    recipe = tuple(f"{n.depth}:{n.name}" for n in graph)
    return PassKey(recipe, tuple(n.dataset for n in graph if n.source))


def wrap_iter(
    cls: Any,
    recorder: Recorder,
    eager: Callable[[], bool] | None = None,
    key: Callable[[Any], Any] | None = None,
) -> None:
    original = cls.__iter__
    if getattr(original, "__epochwatch__", False):
        return
    auto, guard = recorder.auto, recorder.guard

    @functools.wraps(original)
    def __iter__(self: Any) -> Any:
        if getattr(_inside, "iter", False):  # a distributed dataset's own pass over its dataset
            return original(self)
        if eager is None or eager():  # in the script's own epochs too: new iterators per step
            guard.run(PART, lambda: auto.pass_started(self, key), None)
        _inside.iter = True
        try:
            return original(self)
        finally:
            _inside.iter = False

    __iter__.__epochwatch__ = True  # type: ignore[attr-defined]
    cls.__iter__ = __iter__


def install_tf(recorder: Recorder) -> None:
    from tensorflow.python.data.ops import dataset_ops
    from tensorflow.python.eager import context

    wrap_iter(dataset_ops.DatasetV2, recorder, context.executing_eagerly, tf_pass_key)
    # A tf.distribute loop iterates the strategy's datasets (experimental_distribute_dataset,
    # distribute_datasets_from_function), which are no DatasetV2: each is its own key.
    from tensorflow.python.distribute import input_lib

    for klass in (input_lib.DistributedDataset, input_lib.DistributedDatasetsFromFunction):
        wrap_iter(klass, recorder, context.executing_eagerly)


def install_keras(recorder: Recorder) -> None:
    from keras.utils import PyDataset

    wrap_iter(PyDataset, recorder)


def install_torch(recorder: Recorder) -> None:
    from torch.utils.data import DataLoader

    wrap_iter(DataLoader, recorder)
