"""The input fingerprint of a fit: per-feature statistics of its first few batches.

A resumed run whose inputs are scaled differently from its parent's (the scaler that was not
reapplied, raw pixels instead of [0, 1]) trains on data the model has never seen, and the
loss jumps. Comparing the first batches' mean/std/min/max per feature with the parent's
says so directly. Cheap by construction, on the host:

- numpy arrays (and anything with `shape`/`dtype`: tensors, DataFrames), dicts and lists of
  them: the first MAX_BATCHES batches' rows, at most MAX_ELEMENTS values per array; a slice
  of memory already there, no copy of the data set.
- `tf.data.Dataset`: DATASET_BATCHES batches from a fresh iterator, where its pipeline can
  run once more without changing what training sees or costing more than those batches
  (`replay_risk`: in-memory sources, files, maps, filters and the nodes that batch, select
  or reorder; a shuffle only over in-memory data). Else skipped, with the reason: a second
  iterator of `from_generator(lambda: gen)` pulls from the same generator (training lost 64
  to 1,064 rows of 6,400: tensorflow#29123's shape), one of `cache(filename)` writes a cache
  it then discards (and grew the process 100-180 MiB over 16 folds), a shuffle buffer
  filled through a decoding map ran it over the whole buffer (375 MiB, 0.5 s a fit). The
  read is measured and written into the record as `cost_seconds` with a note.
- Python generators and iterators: skipped. They cannot be read ahead without consuming
  batches training would then never see.
- `keras.utils.PyDataset`/`Sequence`: skipped. Indexing one runs the user's loading code on
  the training thread outside fit's workers, which may be slow or stateful.

Features: an array with up to MAX_FEATURES values per row gets statistics per feature;
wider ones per channel (last axis) when that has up to MAX_FEATURES entries, else one set
for the whole array (`per`: feature, channel or all).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from epochwatch.integrations.dataset_graph import nodes

MAX_BATCHES = 4
DATASET_BATCHES = 2
DEFAULT_BATCH = 32
MAX_ELEMENTS = 1 << 21  # values per array (16 MB as float64)
MAX_FEATURES = 64
MAX_ARRAYS = 32  # inputs + targets described per fit


def describe_inputs(x: Any, y: Any = None, batch_size: int | None = None) -> dict[str, Any] | None:
    """`input_stats` for fit_start: statistics of the first batches, or why there are none."""
    if x is None:
        return None
    t0 = time.perf_counter()
    if _is_dataset(x):
        out = _from_dataset(x)
    elif inspect.isgenerator(x) or (hasattr(x, "__next__") and not hasattr(x, "shape")):
        out = {
            "source": "generator",
            "skipped": "a Python generator or iterator cannot be read ahead without consuming batches "
            "that training would then miss",
        }
    elif _is_py_dataset(x):
        out = {
            "source": type(x).__name__,
            "skipped": "reading a PyDataset/Sequence batch runs its loading code on the training thread, "
            "outside fit's workers; not done",
        }
    else:
        rows = max(1, batch_size or DEFAULT_BATCH) * MAX_BATCHES
        inputs = _describe_structure(x, rows, "x")
        targets = _describe_structure(y, rows, "y")
        if not inputs:
            return {"source": type(x).__name__, "skipped": "no arrays to describe"}
        out = {"source": "arrays", "batches": MAX_BATCHES, "inputs": inputs}
        if targets:
            out["targets"] = targets
        out["rows"] = max(int(s.get("rows", 0)) for s in inputs.values())
    out["cost_seconds"] = round(time.perf_counter() - t0, 6)
    return out


# -- what kind of input ----------------------------------------------------------------


def _is_dataset(x: Any) -> bool:
    return hasattr(x, "element_spec") and hasattr(x, "take") and callable(getattr(x, "take", None))


def _is_py_dataset(x: Any) -> bool:
    names = {cls.__name__ for cls in type(x).__mro__}
    return bool(names & {"PyDataset", "Sequence", "PyDatasetAdapter"}) and not hasattr(x, "dtype")


def _is_array(v: Any) -> bool:
    return hasattr(v, "shape") and (hasattr(v, "dtype") or hasattr(v, "to_numpy"))


def _describe_structure(value: Any, rows: int, default_name: str) -> dict[str, Any]:
    """{name: stats} for an array, a dict of arrays, or a list/tuple of arrays."""
    if value is None:
        return {}
    if isinstance(value, dict):
        items: Iterable[tuple[str, Any]] = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        items = [(default_name, value)]
    out: dict[str, Any] = {}
    for name, v in items:
        if len(out) >= MAX_ARRAYS:
            break
        if _is_array(v):
            out[name] = array_stats(_head(v, rows))
    return out


def _head(v: Any, rows: int) -> np.ndarray:
    """The first `rows` rows (fewer for wide rows) as numpy, slicing before converting."""
    shape = tuple(int(d) for d in getattr(v, "shape", ()) if d is not None)
    per_row = math.prod(shape[1:]) if len(shape) > 1 else 1
    rows = max(1, min(rows, MAX_ELEMENTS // max(1, per_row)))
    if hasattr(v, "iloc"):  # pandas
        return np.asarray(v.iloc[:rows].to_numpy())
    sliced = v[:rows] if len(shape) >= 1 else v
    if hasattr(sliced, "numpy"):
        sliced = sliced.numpy()
    return np.asarray(sliced)


# -- statistics ------------------------------------------------------------------------


def _round(values: np.ndarray) -> list[float]:
    return [float(f"{v:.6g}") if math.isfinite(v) else float("nan") for v in values.tolist()]


def array_stats(a: np.ndarray) -> dict[str, Any]:
    """dtype, per-row shape, row count and mean/std/min/max per feature (see module doc)."""
    out: dict[str, Any] = {"dtype": str(a.dtype), "shape": [int(d) for d in a.shape[1:]]}
    rows = int(a.shape[0]) if a.ndim else 1
    out["rows"] = rows
    if a.dtype.kind not in "biuf" or a.size == 0:
        out["per"] = "none"
        return out
    if a.ndim <= 1:
        flat, per = a.reshape(rows, 1), "feature"
    elif math.prod(a.shape[1:]) <= MAX_FEATURES:
        flat, per = a.reshape(rows, -1), "feature"
    elif a.shape[-1] <= MAX_FEATURES:
        flat, per = a.reshape(-1, a.shape[-1]), "channel"
    else:
        flat, per = a.reshape(-1, 1), "all"
    f = flat.astype(np.float64, copy=False)
    finite = np.isfinite(f)
    count = finite.sum(axis=0)
    nonfinite = int(f.size - int(count.sum()))
    with np.errstate(all="ignore"):  # thread-local in numpy, unlike warnings.catch_warnings
        mean = np.where(finite, f, 0.0).sum(axis=0) / count
        std = np.sqrt(np.where(finite, (f - mean) ** 2, 0.0).sum(axis=0) / count)
        low = np.where(finite, f, np.inf).min(axis=0)
        high = np.where(finite, f, -np.inf).max(axis=0)
    empty = count == 0
    low[empty] = np.nan
    high[empty] = np.nan
    out["per"] = per
    out["mean"], out["std"], out["min"], out["max"] = (_round(v) for v in (mean, std, low, high))
    if nonfinite:
        out["nonfinite"] = nonfinite
    return out


# -- tf.data ---------------------------------------------------------------------------


def _to_numpy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return type(value)(_to_numpy(v) for v in value)
    if isinstance(value, list):
        return [_to_numpy(v) for v in value]
    return value.numpy() if hasattr(value, "numpy") else value


def _concat(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, dict):
        return {k: _concat([p[k] for p in parts]) for k in first}
    if isinstance(first, list | tuple):
        return [_concat([p[i] for p in parts]) for i in range(len(first))]
    arrays = [np.asarray(p) for p in parts]
    if all(a.ndim >= 1 for a in arrays) and len({a.shape[1:] for a in arrays}) == 1:
        return np.concatenate(arrays, axis=0)
    return arrays[0]


# tf.data's node classes (without their leading underscore) a read-ahead may run again.
IN_MEMORY = frozenset(
    {"TensorSliceDataset", "TensorDataset", "RangeDataset", "VariantDataset", "SparseTensorSliceDataset"}
)
SHAPING = frozenset(
    {
        "BatchDataset", "PaddedBatchDataset", "UnbatchDataset", "PrefetchDataset", "OptionsDataset",
        "RestructuredDataset", "ZipDataset", "ConcatenateDataset", "TakeDataset", "SkipDataset",
        "RepeatDataset", "ShardDataset", "AssertCardinalityDataset", "DenseToRaggedDataset",
        "ParallelBatchDataset", "FinalizeDataset", "ModelDataset",
    }
)  # fmt: skip
COMPUTING = frozenset({"MapDataset", "ParallelMapDataset", "FilterDataset"})
FILES = frozenset(
    {"TFRecordDatasetV2", "TFRecordDatasetV1", "TextLineDatasetV2", "FixedLengthRecordDatasetV2"}
)
SHUFFLES = frozenset({"ShuffleDataset"})


def replay_risk(ds: Any) -> str | None:
    """Why running `ds`'s pipeline once more for a read-ahead could change what training
    sees or cost more than its batches, or None. Allowed: the nodes above, and a shuffle
    whose buffer fills from in-memory data only (it copies, it computes nothing); anything
    else (a generator, a flat_map or interleave whose function may read one, a cache, a
    snapshot) is a risk, and so is a pipeline that cannot be walked."""
    graph = nodes(ds)
    if graph is None:
        return "its pipeline cannot be walked, or has over 64 steps"
    shuffle_at: int | None = None  # the depth of the shuffle the node is an input of, if any
    for node in graph:
        if shuffle_at is not None and node.depth <= shuffle_at:
            shuffle_at = None  # depth-first: back beside or above that shuffle
        if node.name in SHUFFLES:
            shuffle_at = node.depth if shuffle_at is None else shuffle_at
        elif node.name not in IN_MEMORY | SHAPING | COMPUTING | FILES:
            return f"its pipeline has a {node.name} that a second read could consume, or write again"
        elif shuffle_at is not None and node.name not in IN_MEMORY | SHAPING:
            return f"its shuffle buffer fills through a {node.name}, which a second read would run over the whole buffer"
    return None


def _from_dataset(ds: Any) -> dict[str, Any]:
    risk = replay_risk(ds)
    if risk is not None:
        return {"source": "dataset", "skipped": f"not read ahead: {risk}"}
    note = (
        f"read {DATASET_BATCHES} batches from a new iterator of the dataset; its pipeline produced "
        "them once more for this"
    )
    t0 = time.perf_counter()
    elements = [_to_numpy(e) for e in ds.take(DATASET_BATCHES)]
    read = time.perf_counter() - t0
    if not elements:
        return {"source": "dataset", "skipped": "the dataset yielded no batches", "note": note}
    data = _concat(elements)
    x, y = data, None
    if isinstance(elements[0], tuple) and isinstance(data, list):  # Keras' (x, y[, sample_weight])
        x = data[0]
        y = data[1] if len(data) > 1 else None
    inputs = _describe_structure(x, MAX_ELEMENTS, "x")
    targets = _describe_structure(y, MAX_ELEMENTS, "y")
    out: dict[str, Any] = {"source": "dataset", "batches": len(elements), "note": note}
    out["read_seconds"] = round(read, 6)
    if inputs:
        out["inputs"] = inputs
        out["rows"] = max(int(s.get("rows", 0)) for s in inputs.values())
    else:
        out["skipped"] = "dataset elements are not arrays"
    if targets:
        out["targets"] = targets
    return out
