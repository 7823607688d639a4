"""Custom TensorFlow loops with only `import epochwatch.hook`: no hook.epoch(), no hook.step().

The steps are the optimizer's updates (a `@tf.function` step is seen through the function
that traced the update), the epochs the passes over the `tf.data` dataset that fed them
(`epoch_source: data_pass`), and a loop that builds a model per iteration is judged as a
loop of fits (`models_in_loop`) or as host memory growth. Healthy loops stay quiet.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import child_env, latest_findings, of_type, read_single_trace, run_python

HEAD = """
import epochwatch.hook
import numpy as np, tensorflow as tf, keras
x = np.random.rand(64, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # 4 steps a pass

def make():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
    opt = keras.optimizers.Adam()

    @tf.function
    def train_step(xb, yb, scale=1.0):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(xb) - yb) ** 2) * scale
        g = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(g, model.trainable_variables))
        return loss
    return train_step
"""

MODEL_PER_ITERATION = (
    HEAD
    + """
for n in range(12):
    train_step = make()
    for xb, yb in ds:
        train_step(xb, yb)
"""
)

ONE_MODEL = (
    HEAD
    + """
train_step = make()
for n in range(12):
    for i, (xb, yb) in enumerate(ds):
        train_step(xb, yb, {scale})
"""
)

EAGER = (
    HEAD
    + """
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
opt = keras.optimizers.SGD()
for n in range(30):
    xb, yb = x[:16], y[:16]
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(xb) - yb) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
"""
)

MARKED = (
    HEAD
    + """
from epochwatch import hook
train_step = make()
for n in range(3):
    with hook.epoch(n):
        for xb, yb in ds:
            train_step(xb, yb)
"""
)


BY_HAND = (
    HEAD
    + """
w = tf.Variable(tf.zeros([8, 1]))

def update(xb, yb):  # TF's basic training loop: no optimizer, the variable updated by hand
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((xb @ w - yb) ** 2)
    w.assign_sub(0.01 * tape.gradient(loss, w))

traced = tf.function(update)
for step in [update] * 3 + [traced] * 3:  # eager passes, then a traced step's
    for xb, yb in ds:
        step(xb, yb)
train_step = make()  # then an optimizer: its updates are the steps, the gradients no more
for n in range(2):
    for xb, yb in ds:
        train_step(xb, yb)
"""
)

# TF's pix2pix tutorial loop (2020): `train_ds.enumerate()` made anew every epoch, the Python
# int `epoch` into the step function (a new trace each epoch); a validation set of its own
# source batched anew each epoch too, which is no pass of the training data.
EPOCH_ARG = (
    HEAD
    + """
train_step = make()
val = tf.data.Dataset.from_tensor_slices((x[:32], y[:32]))
for epoch in range(6):
    for n, (xb, yb) in ds.enumerate():
        train_step(xb, yb, epoch)  # `scale`: the epoch, a Python int
    for xb, yb in val.batch(16):
        pass
"""
)


# GM-NAS#4's loop: `next(iter(ds))` for each step, over a shuffled dataset of 64 batches.
BIG = (
    HEAD
    + """
big = tf.data.Dataset.from_tensor_slices((np.random.rand(1024, 8).astype("float32"), np.ones((1024, 1), "float32")))
big = big.shuffle(1024).batch(16)
train_step = make()
"""
)
ITERATOR_PER_STEP = (
    BIG
    + """for n in range(60):
    xb, yb = next(iter(big))  # PLANTED
    train_step(xb, yb)
"""
)

# The same inside the script's own epochs (`hook.epoch()`), its steps marked by the updates.
ITERATOR_PER_STEP_OWN_EPOCHS = (
    BIG
    + """from epochwatch import hook
for epoch in range(3):
    with hook.epoch(epoch):
        for n in range(30):
            xb, yb = next(iter(big))
            train_step(xb, yb)
"""
)

# Passes of one batch each: epochs of one step, no iterator made per step.
ONE_BATCH_PASSES = (
    HEAD
    + """
one = ds.unbatch().batch(64)
train_step = make()
for n in range(30):
    for xb, yb in one:
        train_step(xb, yb)
"""
)


def _run(tmp_path: Path, code: str, **env: str) -> list[dict]:
    run_python(code, tmp_path, env=child_env(tmp_path, **env))
    return read_single_trace(tmp_path)


def _kinds(records: list[dict]) -> set[str]:
    return {f["kind"] for f in latest_findings(records) if f["severity"] in ("warning", "critical")}


def test_a_model_built_every_iteration_is_flagged_with_its_steps_counted(tmp_path: Path) -> None:
    records = _run(tmp_path, MODEL_PER_ITERATION)
    epochs = of_type(records, "epoch")
    assert len(epochs) == 12 and all(e["epoch_source"] == "data_pass" for e in epochs[1:])
    assert sum(e["steps"] for e in epochs) == 48  # every update, the traced first call included
    assert len(of_type(records, "fit_start")) == 12 and of_type(records, "fit_end")[-1]["rss_bytes"] > 0
    # Flagged at the severity its consequence earns (docs/findings.md: info while 12 models
    # grow the process by less than half before the run's horizon).
    kinds = {f["kind"] for f in latest_findings(records)}
    assert kinds & {"models_in_loop", "host_memory_growth"}, kinds


def test_the_same_loop_with_one_model_is_quiet_and_its_passes_are_epochs(tmp_path: Path) -> None:
    records = _run(tmp_path, ONE_MODEL.format(scale="1.0"))
    epochs = of_type(records, "epoch")
    assert [e["epoch"] for e in epochs] == list(range(12))
    assert all(e["epoch_source"] == "data_pass" and e["steps"] == 4 for e in epochs)
    assert len(of_type(records, "fit_start")) == 1
    assert not _kinds(records), latest_findings(records)


def test_a_step_retraced_every_call_is_a_retrace_storm(tmp_path: Path) -> None:
    # A Python float that changes every call: a new trace per call.
    records = _run(tmp_path, ONE_MODEL.format(scale="1.0 + (n * 4 + i) / 100"))
    assert sum(e["steps"] for e in of_type(records, "epoch")) == 48
    assert "retrace_storm" in _kinds(records)


def test_a_dataset_enumerated_anew_each_epoch_gives_its_passes_and_the_epoch_argument(tmp_path: Path) -> None:
    records = _run(tmp_path, EPOCH_ARG)
    epochs = of_type(records, "epoch")
    assert [(e["steps"], e["epoch_source"]) for e in epochs] == [(4, "data_pass")] * 6, epochs
    found = [f for f in latest_findings(records) if f["severity"] in ("warning", "critical")]
    assert [(f["kind"], f["evidence"].get("argument")) for f in found] == [("retrace_storm", "scale")], found


def test_a_loop_with_no_optimizer_has_its_gradients_as_steps(tmp_path: Path) -> None:
    records = _run(tmp_path, BY_HAND)
    epochs = of_type(records, "epoch")
    assert [e["steps"] for e in epochs] == [4] * 8, [(e["steps"], e["epoch_source"]) for e in epochs]
    assert all(e["epoch_source"] == "data_pass" for e in epochs)
    # a loop with no optimizer has no model to tell apart; the optimizer's training is one
    assert [f["optimizer"]["class"] for f in of_type(records, "fit_start")] == ["Adam"]


def test_without_a_dataset_pass_the_steps_are_cut_into_windows(tmp_path: Path) -> None:
    records = _run(tmp_path, EAGER, EPOCHWATCH_WINDOW_STEPS="10")
    epochs = of_type(records, "epoch")
    assert [e["steps"] for e in epochs] == [10, 10, 10]
    assert all(e["epoch_source"] == "window_steps" and e["source"] == "auto" for e in epochs)


def test_the_scripts_own_epochs_win(tmp_path: Path) -> None:
    records = _run(tmp_path, MARKED)
    epochs = of_type(records, "epoch")
    assert [(e["epoch"], e["source"]) for e in epochs] == [(0, "loop"), (1, "loop"), (2, "loop")]
    assert not any("epoch_source" in e for e in epochs)
    # No hook.step(): the step function's calls are the script's epochs' steps (were None).
    assert [e.get("steps") for e in epochs] == [4, 4, 4]


PY_DATASET = """
import epochwatch.hook
import numpy as np, tensorflow as tf, keras

class Batches(keras.utils.PyDataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        x = np.full((8, 4), i, "float32")
        return x, x.sum(axis=1, keepdims=True)

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
opt = keras.optimizers.SGD(0.001)
data = Batches()
for n in range(4):
    for xb, yb in data:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(xb) - yb) ** 2)
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
"""


def test_a_keras_pydataset_feeding_an_eager_loop_gives_its_passes_as_epochs(tmp_path: Path) -> None:
    epochs = of_type(_run(tmp_path, PY_DATASET), "epoch")
    assert [(e["steps"], e["epoch_source"]) for e in epochs] == [(3, "data_pass")] * 4


TF_KERAS = """
import epochwatch.hook
import numpy as np, tensorflow as tf, tf_keras
x = np.random.rand(64, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # 4 steps a pass
model = tf_keras.Sequential([tf_keras.Input((8,)), tf_keras.layers.Dense(16), tf_keras.layers.Dense(1)])
opt = tf_keras.optimizers.Adam()
model.compile(optimizer=tf_keras.optimizers.Adam(), loss="mse")

@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(xb) - yb) ** 2)
    g = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(g, model.trainable_variables))
    return loss

def passes(n):
    for _ in range(n):
        for xb, yb in ds:
            train_step(xb, yb)

passes(3)
model.fit(x, y, batch_size=16, epochs=2, verbose=0)  # a fit between the loop's passes
passes(2)
from tensorflow.python.eager.polymorphic_function.polymorphic_function import Function
assert not hasattr(Function.__call__, "__epochwatch__")  # no wrapper on tf.function calls
assert type(model.train_function) is Function and type(train_step) is not Function, type(train_step)
"""


def test_tf_keras_custom_loop_and_fit_are_both_seen(tmp_path: Path) -> None:
    epochs = of_type(_run(tmp_path, TF_KERAS), "epoch")
    seen = [(e["source"], e.get("epoch_source"), e.get("steps")) for e in epochs]
    # The loop's third pass is still open when the fit begins: it is written then, not lost.
    loop = [("auto", "data_pass", 4), ("auto", "data_pass", 4), ("auto", "fit", 4)]
    fit = [("keras", None, 4), ("keras", None, 4)]
    assert seen == [*loop, *fit, ("auto", "data_pass", 4), ("auto", "data_pass", 4)], seen


MIRRORED = """
import epochwatch.hook
import tensorflow as tf, keras
strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD()
    optimizer.build(model.trainable_variables)
data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(tf.ones((64, 4))).batch(8))

@tf.function
def step(x):
    def replica(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(x))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss
    return strategy.run(replica, args=(x,))

for epoch in range(3):
    for x in data:
        step(x)
"""


def test_a_mirrored_strategy_loop_is_traced_by_its_passes(tmp_path: Path) -> None:
    """tensorflow#36530's shape: strategy.run traces each replica's step on a thread of its
    own; the hook wrote no trace at all. Now three data_pass epochs of 8 steps."""
    run_python(MIRRORED, tmp_path)
    epochs = of_type(read_single_trace(tmp_path), "epoch")
    assert [(e["epoch_source"], e["steps"]) for e in epochs] == [("data_pass", 8)] * 3, epochs


# tensorflow#62198: a jit_compile=True step fed batches of varying length.
XLA_VARLEN = """
import epochwatch.hook
import tensorflow as tf
from epochwatch import hook

w = tf.Variable(tf.ones((4, 1)))


@tf.function(jit_compile=True)
def step(x):
    return tf.reduce_sum(tf.matmul(x, w))


plain = tf.function(lambda x: tf.reduce_sum(x))
for n in range(3):
    with hook.epoch(n):
        step(tf.ones((2, 3 + n, 4)))
        plain(tf.ones((2, 3 + n, 4)))
"""


def test_a_jit_compiled_functions_traces_say_so(tmp_path: Path) -> None:
    """XLA compiles each new shape of a jit_compile=True function, input_signature or not:
    its traces carry `xla`, so retrace_storm's fix is about the shapes (tensorflow#62198)."""
    functions: dict[str, dict] = {}
    for e in of_type(_run(tmp_path, XLA_VARLEN), "epoch"):
        functions.update(e.get("retraces", {}).get("functions", {}))
    assert functions["step"].get("xla") is True and "xla" not in functions["<lambda>"], functions


def test_a_new_iterator_for_each_step_is_said_with_its_line_and_cuts_no_epochs(tmp_path: Path) -> None:
    """GM-NAS#4 in TensorFlow read 936 one-step "epochs" for 3 of 312 steps, and the time
    lost to restarting the pipeline for each batch was unsaid."""
    records = _run(tmp_path, ITERATOR_PER_STEP)
    epochs = of_type(records, "epoch")
    assert [(e["steps"], e["epoch_source"]) for e in epochs] == [(60, "window_steps")], epochs
    made = epochs[0]["new_iterators"]
    line = ITERATOR_PER_STEP.splitlines().index("    xb, yb = next(iter(big))  # PLANTED") + 1
    assert made["count"] == 59 and made["site"] == f"train_script.py:{line} <module>", made
    assert made["dataset"] == "big", made  # the name the line gives it: `iter(big)`
    assert 0 < made["seconds_to_step"] < epochs[0]["seconds"], made
    (found,) = [f for f in latest_findings(records) if f["kind"] == "iterator_per_step"]
    assert found["severity"] == "warning" and f"train_script.py:{line}" in found["title"], found
    assert found["title"].startswith("a new iterator over `big` made for each step"), found["title"]
    assert "iter(train_ds)` before the loop" in found["hint"]


def test_passes_of_a_one_batch_dataset_are_epochs(tmp_path: Path) -> None:
    records = _run(tmp_path, ONE_BATCH_PASSES)
    epochs = of_type(records, "epoch")
    assert [(e["steps"], e["epoch_source"]) for e in epochs[1:]] == [(1, "data_pass")] * 29, epochs
    assert not any("new_iterators" in e for e in epochs)
    assert "iterator_per_step" not in {f["kind"] for f in latest_findings(records)}


def test_a_new_iterator_for_each_step_is_counted_in_the_scripts_own_epochs(tmp_path: Path) -> None:
    records = _run(tmp_path, ITERATOR_PER_STEP_OWN_EPOCHS)
    epochs = of_type(records, "epoch")
    assert [(e["source"], e["steps"]) for e in epochs] == [("loop", 30)] * 3, epochs
    assert [e["new_iterators"]["count"] for e in epochs] == [29] * 3, epochs
    (found,) = [f for f in latest_findings(records) if f["kind"] == "iterator_per_step"]
    assert "over `big`" in found["title"], found["title"]
