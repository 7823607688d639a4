"""How long a Keras fit's training steps wait for their next batch, per epoch.

The step waits where it pulls its batch; where that is, and what can time it cheaply,
depends on the input Keras was given (keras/src/trainers/data_adapters, Keras 3):

- On the TensorFlow backend every input becomes a `tf.data` pipeline pulled *inside* the
  compiled train function (`next(iterator)` in a tf.function), so Python never sees the
  wait. tf.data's autotune model of that iterator does: it keeps the consumer's last ~100
  gaps between `GetNext` calls (`ModelProto.gap_times`, the step's own time). The wait of
  an epoch is its training time minus the gaps within it (source `tf.data`). The
  model is read with `tf.data.experimental.get_model_proto` at the epoch's end, which
  costs about 0.1-0.2 ms of the training thread's CPU, so it is read only while that
  stays under READ_SHARE of the training time after a 2 ms allowance (every epoch from
  ~0.5 s epochs on; a sample of shorter ones, whose records then lack the wait).
  TF's C++ monitoring keeps `/tensorflow/data/iterator_busy` and `getnext_duration`, which
  would be exact, but TF exposes no Python reader for them.
- A Python generator or `PyDataset`/`Sequence`: Keras calls the producer (`next()` on the
  generator, `__getitem__` through `PyDatasetAdapter._get_iterator`); each call is timed
  with two clock reads in the thread that runs it (a tf.data thread on the TF backend,
  the training thread on others) into two per-fit floats, no lock (`producer_seconds`).
- A `PyDataset` with `workers` (Keras' OrderedEnqueuer): the workers' time is not the
  step's; what the step waits is the consumer's `get()` on the enqueuer's queue, which
  Keras runs synchronously under the step's `GetNext` (no prefetch in that case): that
  time is the wait (source `queue`).

Only one fit per process is instrumented at a time (the one whose callback is active);
everything here runs through the Recorder's guard and never raises into training.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from epochwatch.integrations.keras_reads import Credit

# The model read may cost at most this share of training time (credit-based, as the
# online analysis is), after a starting allowance: every epoch from ~0.5 s epochs on,
# a sample of shorter ones.
READ_SHARE = 0.0003
READ_START_CREDIT = 0.002
FIRST_READ_GUESS = 0.0002
SOURCE_TF_DATA = "tf.data"
SOURCE_QUEUE = "queue"

_active: InputProbe | None = None


def active() -> InputProbe | None:
    return _active


class InputProbe:
    """One fit's input timing: producer counters and the iterators its steps pulled from."""

    def __init__(self) -> None:
        self.producer_seconds = 0.0  # written by the producer's thread only
        self.producer_calls = 0
        # The user's code that makes the batches: (qualified name, file, first line), for
        # explain (a stack sampler on a Python thread rarely sees a producer that runs on
        # tf.data's threads: it only gets the GIL between the producer's calls).
        self.producer: tuple[str, str, int] | None = None
        self.queue = False  # PyDataset with workers: producer time is the consumer's wait
        # (made at, weak reference), newest last: what the steps may pull from (see iterator_created)
        self._iterators: list[tuple[float, weakref.ref[Any]]] = []
        self.training = False  # between the epoch's start and its validation (or end)
        self._epoch_start = 0.0
        self._producer_start = (0.0, 0)
        self._pace = Credit(READ_SHARE, READ_START_CREDIT, FIRST_READ_GUESS)
        self.model_readable = True

    # -- called by the patched Keras pieces ----------------------------------------------

    def iterator_created(self, iterator: Any) -> None:
        """Note, weakly, an iterator the steps may pull from.

        Never a strong reference: Keras keeps the epoch's iterator (in `fit`'s loop
        variable) until the next epoch's first step, which is all the epoch-end read needs,
        and an iterator kept alive past that and dropped later, idle, can take its tf.data
        threads hundreds of milliseconds to wind down, on the training thread (measured:
        up to 1.2 s per epoch when the last three were held).
        """
        if not self.training:
            return
        try:
            ref = weakref.ref(iterator)
        except TypeError:
            return  # not one tf.data makes: nothing to read
        self._iterators.append((time.perf_counter(), ref))
        del self._iterators[:-3]  # the few that can still be the epoch's

    def timed(self, source: Iterator[Any]) -> Iterator[Any]:
        """`source`, with each `next()` timed into this probe (in the caller's thread)."""
        return timed_next(source, self._produced)

    def _produced(self, seconds: float) -> None:
        self.producer_seconds += seconds
        self.producer_calls += 1

    # -- called by the Keras callback -------------------------------------------------------

    def begin_epoch(self, now: float) -> None:
        self.training = True
        self._epoch_start = now

    def end_training(self) -> None:
        self.training = False

    def close(self) -> None:
        self.training = False
        self._iterators.clear()

    def epoch_fields(
        self, train_end: float, batches: int, last_step: float | None, first_step: float | None = None
    ) -> dict[str, Any]:
        """`input_wait_seconds` and friends for the epoch that trained until `train_end`.

        The span starts at the first step (its first batch's wait is inside it), not at the
        epoch's start: before the first step, Keras makes the epoch's iterator and drops the
        last one, whose tf.data threads take up to a few hundred milliseconds to wind down
        after a long epoch end (callbacks, checkpoints). That is no wait for a batch, and it
        is the same with any input pipeline.
        """
        self.training = False
        start = max(first_step, self._epoch_start) if first_step is not None else self._epoch_start
        train = max(0.0, train_end - start)
        out: dict[str, Any] = {}
        # Every batch in exactly one epoch: since the last epoch's fields (the fit's start for
        # the first), so what the producer made ahead between two epochs (tf.data prefetches
        # before the first epoch begins, too) is the next epoch's, not lost.
        produced = self.producer_seconds - self._producer_start[0]
        calls = self.producer_calls - self._producer_start[1]
        self._producer_start = (self.producer_seconds, self.producer_calls)
        if calls:
            out.update(producer_fields(produced, calls, self.producer))
        if self.queue and calls:
            out["input_wait_seconds"] = round(min(produced, train), 6)
            out["input_wait_source"] = SOURCE_QUEUE
            out["input_span_seconds"] = round(train, 6)
            return out
        due = self._pace.due(train)
        if not self.model_readable or batches <= 0 or not due:
            return out
        iterator = self._epoch_iterator(last_step)
        if iterator is None:
            return out
        # What the read costs the run is the training thread's CPU (the op runs on it: CPU
        # and wall agree on a quiet machine). Wall time would charge a read preempted on a
        # loaded host: one read "costing" 5 ms left 2 of an 8-epoch fit's epochs measured.
        t0 = time.thread_time()
        gaps = _gap_seconds(iterator)
        # The first read pays the op's one-time set-up (in overhead_seconds, not the allowance).
        self._pace.spent(time.thread_time() - t0, first=not self._pace.cost)
        if gaps is None:
            self.model_readable = False  # no autotune model (disabled): say nothing
            return out
        compute = _compute_seconds(gaps, batches)
        if compute is None:
            return out
        out["input_wait_seconds"] = round(max(0.0, train - compute), 6)
        out["input_wait_source"] = SOURCE_TF_DATA
        out["input_span_seconds"] = round(train, 6)  # what the wait is a share of
        return out

    def _epoch_iterator(self, last_step: float | None) -> Any:
        """The iterator this epoch's steps pulled from: the newest made before its last step."""
        chosen = None
        for created, ref in self._iterators:
            if last_step is None or created <= last_step:
                chosen = ref
        return None if chosen is None else chosen()  # gone: not an older one in its place


def _gap_seconds(iterator: Any) -> list[float] | None:
    try:
        import tensorflow as tf

        proto = tf.data.experimental.get_model_proto(iterator)
    except Exception:
        return None
    return [g / 1e6 for g in proto.gap_times]


def _compute_seconds(gaps: list[float], batches: int) -> float | None:
    """The epoch's time outside `GetNext`, from the consumer's gaps (newest last).

    The epoch's `batches - 1` newest gaps lie between its own `GetNext` calls; the time
    after its last one (the last step) is one more typical gap. Older gaps span the epoch
    boundary (validation, callbacks) and are left out. With more steps than TF keeps
    gaps for (100), the kept ones stand for all (their mean).
    """
    if not gaps:
        return None
    typical = sorted(gaps)[len(gaps) // 2]
    inner = batches - 1
    if inner <= len(gaps):
        return sum(gaps[len(gaps) - inner :]) + typical if inner > 0 else typical
    return sum(gaps) / len(gaps) * batches


# -- patches into Keras ------------------------------------------------------------------


class _IteratorSpy:
    """Stands in for the dataset `TFEpochIterator._get_iterator` returns: `iter()` on it
    makes the real iterator and tells the active probe which one the steps pull from."""

    __slots__ = ("_dataset",)

    def __init__(self, dataset: Any) -> None:
        self._dataset = dataset

    def __iter__(self) -> Any:
        iterator = iter(self._dataset)
        probe = _active
        if probe is not None:
            probe.iterator_created(iterator)
        return iterator

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dataset, name)


def install(report: Callable[[str, Exception], None]) -> None:
    """Patch Keras' data adapters (and the TF epoch iterator, on the TF backend).

    `report(part, exc)` is told of a failure inside a patched call; the call then goes
    on unpatched, so training never sees it.
    """
    from keras.src.trainers.data_adapters import generator_data_adapter, py_dataset_adapter

    from epochwatch.integrations import patch

    def producer(original: Callable[..., Any], queue_of: Callable[[Any], bool]) -> Callable[..., Any]:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            source = original(self, *args, **kwargs)
            probe = _active
            if probe is None or not probe.training:  # validation's producer is not the step's
                return source
            try:
                probe.queue = queue_of(self)
                probe.producer = producer_code(getattr(self, "py_dataset", None), source)
                return probe.timed(iter(source))
            except Exception as exc:
                report("input timing", exc)
                return source

        return call

    patch(
        py_dataset_adapter.PyDatasetAdapter,
        "_get_iterator",
        lambda original: producer(original, lambda adapter: adapter.enqueuer is not None),
    )

    def generator_init(original: Callable[..., Any]) -> Callable[..., Any]:
        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            make = self.generator
            self.generator = lambda: producer(lambda _self: make(), lambda _adapter: False)(self)

        return init

    patch(generator_data_adapter.GeneratorDataAdapter, "__init__", generator_init)

    import keras

    if keras.backend.backend() != "tensorflow":
        return
    from keras.src.backend.tensorflow import trainer as tf_trainer

    spied = lambda original: lambda self: _IteratorSpy(original(self))  # noqa: E731
    patch(tf_trainer.TFEpochIterator, "_get_iterator", spied)


def timed_next(source: Iterator[Any], add: Callable[[float], None]) -> Iterator[Any]:
    """`source`, each `next()` timed with two clock reads in the thread that calls it: `add(seconds)`."""
    clock = time.perf_counter
    while True:
        t0 = clock()
        try:
            item = next(source)
        except StopIteration:
            return
        add(clock() - t0)
        yield item


def producer_fields(seconds: float, calls: int, producer: tuple[str, str, int] | None) -> dict[str, Any]:
    """An epoch's `input_producer_*` fields: the producer's time and calls, and its code."""
    out: dict[str, Any] = {"input_producer_seconds": round(seconds, 6), "input_producer_batches": calls}
    if producer is not None:
        name, path, line = producer
        out["input_producer_function"] = name
        out["input_producer_site"] = f"{path}:{line}"
    return out


def producer_code(py_dataset: Any, source: Any, maker: Any = None) -> tuple[str, str, int] | None:
    """(qualified name, file, first line) of the user's code that makes the batches: a
    PyDataset's `__getitem__`, a generator's function (or `maker`, the callable that made an
    iterator that is no generator); None when it is not Python code."""
    if py_dataset is not None:
        code = getattr(getattr(type(py_dataset), "__getitem__", None), "__code__", None)
    else:
        code = getattr(source, "gi_code", None) or getattr(maker, "__code__", None)
    if code is None:
        return None
    return getattr(code, "co_qualname", code.co_name), code.co_filename, code.co_firstlineno


def activate(probe: InputProbe | None) -> None:
    global _active
    _active = probe


# -- what the input is, and how it is set up ------------------------------------------------


def settings(x: Any) -> dict[str, Any]:
    """The input kind and the settings that decide its speed, read from the objects (no data)."""
    names = {cls.__name__ for cls in type(x).__mro__}
    if names & {"PyDataset", "Sequence"}:
        out: dict[str, Any] = {"kind": "PyDataset"}
        for key in ("workers", "use_multiprocessing", "max_queue_size"):
            value = getattr(x, key, None)
            if isinstance(value, bool | int):
                out[key] = value
        return out
    if hasattr(x, "element_spec") and hasattr(x, "take"):
        return {"kind": "tf.data", **pipeline(x)}
    if hasattr(x, "__next__") and not hasattr(x, "shape"):
        return {"kind": "generator"}
    return {"kind": "arrays"}


FROM_GENERATOR = "from_generator"
_STAGE_NAMES = {
    "MapDataset": "map",
    "ParallelMapDataset": "map",
    "PrefetchDataset": "prefetch",
    "CacheDataset": "cache",
    "BatchDataset": "batch",
    "ParallelBatchDataset": "batch",
    "ShuffleDataset": "shuffle",
    "RepeatDataset": "repeat",
    "TakeDataset": "take",
    "GeneratorDataset": "from_generator",
    "TensorSliceDataset": "from_tensor_slices",
}


def _parallel(ds: Any) -> int | None:
    value = getattr(ds, "_num_parallel_calls", None)
    if value is None:
        return None
    try:
        return int(value.numpy()) if hasattr(value, "numpy") else int(value)
    except Exception:
        return None


def pipeline(ds: Any, limit: int = 64) -> dict[str, Any]:
    """The stages of a tf.data pipeline from its Python objects, source first, and whether
    maps run in parallel (-1: AUTOTUNE), whether it prefetches and caches."""
    stages: list[str] = []
    maps: list[int] = []
    seen: set[int] = set()
    node = ds
    while node is not None and len(stages) < limit and id(node) not in seen:
        seen.add(id(node))
        raw = type(node).__name__.lstrip("_")
        tagged = getattr(node, "_epochwatch_stage", None)  # what TF builds a source of (generator_clock.py)
        name = (
            tagged
            if isinstance(tagged, str)
            else _STAGE_NAMES.get(raw, raw.removesuffix("Dataset").lower() or raw)
        )
        if name == "map":
            maps.append(_parallel(node) or 1)
        stages.append(name)
        node = getattr(node, "_input_dataset", None) if tagged is None else None
    stages.reverse()
    maps.reverse()
    out: dict[str, Any] = {"stages": stages}
    if maps:
        out["map_parallel_calls"] = maps
    out["prefetch"] = "prefetch" in stages
    out["cache"] = "cache" in stages
    return out
