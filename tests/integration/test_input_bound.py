"""input_bound on real Keras fits: each input kind Keras accepts, slow and keeping up.

Every run is a fresh interpreter with `import epochwatch.hook` (embedded mode). The
faulty inputs are slow by a wide margin (the step waits several times as long as it
computes) and the healthy ones keep up by a wide margin, so the verdicts hold on a
loaded 2-core machine. A few seconds of training per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from epochwatch.analysis.engine import analyze
from epochwatch.analysis.run import load_run
from tests.support import of_type, private_env, read_single_trace, run_python, trace_files

PRELUDE = """
import time
import epochwatch.hook
import numpy as np
import tensorflow as tf
import keras

rng = np.random.default_rng(0)
x = rng.random((512, 64), dtype=np.float32)
y = x.sum(axis=1, keepdims=True)

def tiny():
    m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    m.compile("sgd", "mse")
    return m

def heavy():  # a step of several milliseconds on a CPU
    m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(1024, activation="relu"),
                          keras.layers.Dense(1024, activation="relu"), keras.layers.Dense(1)])
    m.compile("sgd", "mse")
    return m

class Batches(keras.utils.PyDataset):
    def __init__(self, delay, **kwargs):
        super().__init__(**kwargs)
        self.delay = delay
    def __len__(self):
        return 16
    def __getitem__(self, i):
        time.sleep(self.delay)  # reading and decoding a batch from slow storage
        return x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]

def slow_example(v):
    time.sleep(0.006)  # per-example work in Python, e.g. reading a file
    return v

def mapped(ds):
    return ds.map(lambda a, b: (tf.ensure_shape(tf.numpy_function(slow_example, [a], tf.float32), (64,)), b),
                  **MAP_KW)
"""

GENERATOR = (
    PRELUDE
    + """
lines = [",".join(f"{v:.6f}" for v in row).encode() for row in x]

def decoded():
    while True:
        for start in range(0, len(lines), 32):
            rows = []
            for line in lines[start:start + 32]:  # example by example, in Python
                rows.append([float(s) for s in line.decode().split(",")])
                time.sleep(0.0003)  # and waits for its file
            batch = np.asarray(rows, dtype=np.float32)
            yield batch, batch.sum(axis=1, keepdims=True)

tiny().fit(decoded(), steps_per_epoch=16, epochs=5, verbose=0)
"""
)

# 20 ms a batch: still several times the step when a loaded machine slows the step (6 ms was
# not); 8 epochs: one stalled epoch under load must not use up the run's chances to be judged.
PY_DATASET_SLOW = PRELUDE + "tiny().fit(Batches(0.02), epochs=8, verbose=0)\n"
PY_DATASET_WORKERS = PRELUDE + (
    "heavy().fit(Batches(0.004, workers=4), validation_data=Batches(0.0), epochs=5, verbose=0)\n"
)
TF_DATA_SLOW = (
    PRELUDE
    + """
MAP_KW = {}
heavy().fit(mapped(tf.data.Dataset.from_tensor_slices((x[:96], y[:96]))).batch(8), epochs=5, verbose=0)
"""
)
TF_DATA_FAST = (
    PRELUDE
    + """
MAP_KW = {"num_parallel_calls": 8}
ds = mapped(tf.data.Dataset.from_tensor_slices((x[:96], y[:96]))).batch(8).prefetch(tf.data.AUTOTUNE)
options = tf.data.Options()
options.threading.private_threadpool_size = 16  # blocking per-example work: more threads than cores
heavy().fit(ds.with_options(options), epochs=5, verbose=0)
"""
)


def _run(code: str, tmp_path: Path) -> list[dict[str, Any]]:
    run_python(code, tmp_path, env=private_env(tmp_path))
    return read_single_trace(tmp_path)


def _input_bound(records: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    online = [f for f in of_type(records, "finding") if f["kind"] == "input_bound"]
    (path,) = trace_files(tmp_path)
    offline = [f for f in analyze(load_run(path)) if f.kind == "input_bound"]
    assert [(f["target"], f["epoch"]) for f in online] == [(f.target, f.epoch) for f in offline]
    return online


def _waits(records: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    return [(e.get("input_wait_seconds"), e.get("input_wait_source")) for e in of_type(records, "epoch")]


def test_generator_decoding_examples_in_python_is_input_bound(tmp_path: Path) -> None:
    records = _run(GENERATOR, tmp_path)
    (found,) = _input_bound(records, tmp_path)
    ev = found["evidence"]
    assert ev["input"]["kind"] == "generator"
    assert ev["wait_ms_per_batch"] > ev["compute_ms_per_step"], ev
    assert ev["producer_ms_per_batch"] > 0 and ev["source"] == "tf.data"
    assert "vectorise" in found["hint"] and "PyDataset" in found["hint"]
    epochs = of_type(records, "epoch")
    produced = sum(e.get("input_producer_batches", 0) for e in epochs)
    assert 16 * 5 <= produced <= 16 * 5 + 16, epochs  # each batch timed once (the producer runs ahead)
    assert all(e["steps_per_second"] > 0 and e["steps"] == 16 for e in epochs)


def test_py_dataset_without_workers_and_a_slow_getitem_is_input_bound(tmp_path: Path) -> None:
    records = _run(PY_DATASET_SLOW, tmp_path)
    (found,) = _input_bound(records, tmp_path)
    ev = found["evidence"]
    assert ev["input"] == {
        "kind": "PyDataset",
        "workers": 1,
        "use_multiprocessing": False,
        "max_queue_size": 10,
    }
    assert ev["producer_ms_per_batch"] >= 19.5, ev  # the 20 ms __getitem__, timed where it ran
    assert "workers" in found["hint"]
    # Keras feeds a PyDataset through a from_generator of its own: not the script's (a loop
    # of such fits was told to build its data with from_tensor_slices)
    assert [f["from_generator_datasets"] for f in records if f["type"] == "fit_start"] == [0]


def test_tf_data_map_without_parallel_calls_or_prefetch_is_input_bound(tmp_path: Path) -> None:
    records = _run(TF_DATA_SLOW, tmp_path)
    (found,) = _input_bound(records, tmp_path)
    ev = found["evidence"]
    assert ev["input"]["kind"] == "tf.data"
    assert ev["input"]["stages"] == ["from_tensor_slices", "map", "batch"]
    assert ev["wait_ms_per_batch"] > ev["compute_ms_per_step"], ev
    assert ev["input"]["map_parallel_calls"] == [1] and ev["input"]["prefetch"] is False
    assert "num_parallel_calls=tf.data.AUTOTUNE" in found["hint"] and "prefetch" in found["hint"]


def test_tf_data_with_parallel_calls_and_prefetch_that_keeps_up_is_not(tmp_path: Path) -> None:
    records = _run(TF_DATA_FAST, tmp_path)
    assert _input_bound(records, tmp_path) == []
    measured = [w for w, source in _waits(records)[1:] if source == "tf.data"]
    assert measured, _waits(records)  # measured, and found small: not absent
    start = of_type(records, "fit_start")[0]["input"]["settings"]
    assert start["map_parallel_calls"] == [8] and start["prefetch"] is True


def test_py_dataset_with_workers_that_keep_up_is_not(tmp_path: Path) -> None:
    records = _run(PY_DATASET_WORKERS, tmp_path)
    assert _input_bound(records, tmp_path) == []
    waits = _waits(records)
    assert all(source == "queue" for _, source in waits), waits
    epochs = of_type(records, "epoch")
    assert all(e["input_producer_batches"] == 16 for e in epochs), epochs  # validation's not counted
    assert all(e["val_seconds"] > 0 for e in epochs)
    assert all(e["input_wait_seconds"] < 0.3 * e["seconds"] for e in epochs[1:]), waits


ITERATORS_ALIVE = """
import gc
import epochwatch.hook
import numpy as np
import keras

x = np.random.rand(128, 8).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
model.compile("sgd", "mse")
live = []

class CountIterators(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        live.append(sum(type(o).__name__ == "OwnedIterator" for o in gc.get_objects()))

model.fit(x, x[:, :1], epochs=6, batch_size=32, verbose=0, callbacks=[CountIterators()])
print("LIVE", max(live))
"""


def test_the_hook_keeps_no_iterator_keras_has_dropped(tmp_path: Path) -> None:
    """Keras holds two tf.data iterators at an epoch's end (the epoch's and the next); an
    iterator the hook kept beyond that was torn down later, idle, for up to a second on
    the training thread. Input timing still reads the epoch's iterator."""
    proc = run_python(ITERATORS_ALIVE, tmp_path, env=private_env(tmp_path))
    assert "LIVE 2" in proc.stdout, proc.stdout
    assert any(source == "tf.data" for _, source in _waits(read_single_trace(tmp_path)))


LOOP = """
import time
import numpy as np
import tensorflow as tf
from epochwatch import hook

w = tf.Variable(tf.zeros([64, 1]))

@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((tf.matmul(x, w) - y) ** 2)
    w.assign_sub(0.01 * tape.gradient(loss, w))
    return loss

def batches():
    for _ in range(10):
        time.sleep(0.008)  # reading and decoding a batch, one at a time
        x = np.random.rand(32, 64).astype("float32")
        yield x, x.sum(axis=1, keepdims=True)

for n in range(5):
    with hook.epoch(n):
        for x, y in batches():
            with hook.step():
                loss = train_step(x, y)
        hook.log(loss=loss)
"""


def test_a_custom_loop_that_marks_its_steps_waits_between_them(tmp_path: Path) -> None:
    records = _run(LOOP, tmp_path)
    epochs = of_type(records, "epoch")
    assert all(e["steps"] == 10 and e["input_wait_source"] == "steps" for e in epochs), epochs
    assert all(e["input_wait_seconds"] >= 10 * 0.008 for e in epochs), epochs
    (found,) = _input_bound(records, tmp_path)
    assert found["evidence"]["source"] == "steps" and found["epoch"] == 3
