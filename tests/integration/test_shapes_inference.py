"""A script that only predicts, with only `import epochwatch.hook`: an inference run.

Its calls are cut into windows (`epoch_source: inference_calls`, an `inference` block with
the calls and seconds per call), judged like epochs, and the closing line says that no
training was seen and what was (calls, RSS growth) instead of staying silent.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import (
    child_env,
    latest_findings,
    of_type,
    read_single_trace,
    report_json,
    run_python,
    trace_files,
)

PREDICT = """
import epochwatch.hook
import numpy as np, keras
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
x = np.random.rand(32, 8).astype("float32")
for i in range(45):
    model.predict(x, verbose=0)
"""

CALLS = """
import epochwatch.hook
import numpy as np, tensorflow as tf, keras
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
x = np.random.rand(32, 8).astype("float32")
for i in range(30):
    model(x, training=False)
opt = keras.optimizers.SGD()
for i in range(5):  # then it trains: a custom loop that calls the model every step
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
"""

TRACED = """
import epochwatch.hook
import numpy as np, tensorflow as tf, keras
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
x = np.random.rand(32, 8).astype("float32")

@tf.function
def serve(x):  # the model's Python runs only at the trace: the function's calls are the calls
    return model(x, training=False)

for i in range(31):
    serve(x)
opt = keras.optimizers.SGD()

@tf.function
def train_step(x):  # calls the model before its update: a step function all the same
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x, training=True) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

for i in range(6):
    train_step(x)
"""

TRAIN_THEN_SERVE = """
import epochwatch.hook
import numpy as np, keras
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(512)])
model.compile("sgd", "mse")
x = np.random.rand(32, 8).astype("float32")
y = np.random.rand(32, 512).astype("float32")
peek = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: model.predict(x[:4], verbose=0))
model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[peek])
batch = np.random.rand(1024, 8).astype("float32")
kept = [model.predict(batch, verbose=0) for i in range(163)]  # 2 MiB a response, all kept
from tensorflow.python.eager.polymorphic_function.polymorphic_function import Function
# A Keras 3 fit's train function (a tf.function its train_function calls) is TF's own: the
# hook adds nothing to its calls.
inner = [c.cell_contents for c in model.train_function.__closure__ if isinstance(c.cell_contents, Function)]
assert inner and all(type(f) is Function for f in inner) and not hasattr(Function.__call__, "__epochwatch__")
"""

PREDICT_IN_LOOP = """
import os
import epochwatch.hook
import numpy as np, tensorflow as tf, keras
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
opt = keras.optimizers.Adam(1e-3)

@tf.function
def train_step(x, y):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(x, training=True)[:, 0] - y) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

x = np.random.rand(28, 8).astype("float32")
y = x.sum(axis=1)
call = os.environ.get("CALL") == "1"
for i in range(0, 28, 4):  # online learning: each sample scored as it comes, a step every 4
    for j in range(i, i + 4):
        p = model(x[j : j + 1], training=False) if call else model.predict(x[j : j + 1], verbose=0)
    train_step(x[i : i + 4], y[i : i + 4])
model.predict(x, verbose=0)  # a validation predict on the whole set: no such loop
"""

SAVED_MODEL = """
import os
import epochwatch.hook
import tensorflow as tf

class Scale(tf.Module):
    def __init__(self):
        self.w = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def serve(self, x):
        return {"y": x * self.w}

path = os.path.join(os.getcwd(), "exported")
module = Scale()
tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
x = tf.ones([2, 4])
loaded = tf.saved_model.load(path)
for i in range(20):
    loaded.serve(x)
for i in range(10):
    loaded.signatures["serving_default"](x=x)
"""


def test_a_loaded_saved_models_calls_are_an_inference_run(tmp_path: Path) -> None:
    """tensorflow#40171's server, without Keras: `tf.saved_model.load(path).serve(x)` and its
    signatures were no calls at all (no windows: nothing to judge its memory on)."""
    proc = run_python(SAVED_MODEL, tmp_path, env=child_env(tmp_path, EPOCHWATCH_WINDOW_CALLS="10"))
    epochs = of_type(read_single_trace(tmp_path), "epoch")
    assert [e["inference"]["apis"] for e in epochs] == [{"SavedModel function": 10}] * 2 + [
        {"SavedModel signature": 10}
    ], proc.stderr[-2000:]
    assert "no training seen: 20 SavedModel function calls, 10 SavedModel signature calls" in proc.stderr


def test_a_predict_loop_is_an_inference_run_with_a_closing_line(tmp_path: Path) -> None:
    proc = run_python(PREDICT, tmp_path, env=child_env(tmp_path, EPOCHWATCH_WINDOW_CALLS="10"))
    epochs = of_type(read_single_trace(tmp_path), "epoch")
    assert [e["epoch_source"] for e in epochs] == ["inference_calls"] * 5
    assert [e["inference"]["apis"] for e in epochs] == [{"predict": 10}] * 4 + [
        {"predict": 5}
    ]  # the last at exit
    assert all(e["inference"]["seconds_per_call"] > 0 and e["seconds"] > 0 for e in epochs)
    assert all(e["host"]["rss_bytes"] > 0 for e in epochs)  # judged by the memory detectors like epochs
    closing = [line for line in proc.stderr.splitlines() if "windows of calls," in line]
    assert closing and "no training seen: 45 predict calls, RSS " in closing[-1], proc.stderr[-2000:]
    assert "; 5 windows of calls, " in closing[-1]  # no "epochs" of a run that never trained


def test_predict_after_a_fit_is_judged_as_windows_of_its_own(tmp_path: Path) -> None:
    """Train, then serve (tensorflow#33030): the fit's validation and its callback's
    predictions are the fit's; the calls after it are windows numbered from 0 (the 3 left
    at the end make no window), and the responses kept are a leak, found live and offline."""
    proc = run_python(TRAIN_THEN_SERVE, tmp_path, env=child_env(tmp_path, EPOCHWATCH_WINDOW_CALLS="10"))
    records = read_single_trace(tmp_path)
    epochs = of_type(records, "epoch")
    # 16 windows: with 8, one window's allocator noise (RSS 837 -> 836 MiB in a rise of 20
    # MiB a window) was enough for the short-run rule to doubt the newest half.
    assert [(e["source"], e["epoch"]) for e in epochs] == [("keras", 0), ("keras", 1)] + [
        ("auto", n) for n in range(16)
    ]
    assert [e["inference"]["apis"] for e in epochs[2:]] == [{"predict": 10}] * 16
    assert "no training seen" not in proc.stderr
    assert "epochwatch: 2 epochs, 16 windows of calls, " in proc.stderr  # the closing line
    live = [f for f in latest_findings(records) if f["kind"] == "host_memory_growth"]
    offline = [
        f
        for f in report_json(trace_files(tmp_path)[0])["runs"][0]["findings"]
        if f["kind"] == "host_memory_growth"
    ]
    assert live and offline, proc.stderr[-2000:]
    assert live[0]["title"] == offline[0]["title"] and "model(x, training=False)" in offline[0]["hint"]


def test_calling_the_model_in_a_loop_is_inference_until_it_trains(tmp_path: Path) -> None:
    proc = run_python(CALLS, tmp_path, env=child_env(tmp_path, EPOCHWATCH_WINDOW_CALLS="10"))
    epochs = of_type(read_single_trace(tmp_path), "epoch")
    assert [e["epoch_source"] for e in epochs] == ["inference_calls"] * 3 + ["window_steps"]
    assert [e["inference"]["apis"] for e in epochs[:3]] == [{"__call__": 10}] * 3
    assert epochs[3]["steps"] == 5
    assert "no training seen" not in proc.stderr


def test_a_traced_predict_loop_counts_the_functions_calls_then_its_steps(tmp_path: Path) -> None:
    proc = run_python(TRACED, tmp_path, env=child_env(tmp_path, EPOCHWATCH_WINDOW_CALLS="10"))
    epochs = of_type(read_single_trace(tmp_path), "epoch")
    sources = [e["epoch_source"] for e in epochs]
    assert sources == ["inference_calls"] * 3 + ["window_steps"], sources
    # the call that traced it is the trace (its Python ran once), the next 30 are calls
    assert [e["inference"]["apis"] for e in epochs[:3]] == [{"serve": 10}] * 3
    assert epochs[3]["steps"] == 6
    assert "no training seen" not in proc.stderr


def test_predict_per_sample_in_a_custom_loop_is_said_live_and_in_report(tmp_path: Path) -> None:
    """tensorflow#40261: `model.predict(x[None])` per sample inside a training loop took 99.6%
    of the time and nothing was said (the calls made no window once the loop trained)."""
    proc = run_python(PREDICT_IN_LOOP, tmp_path)
    records = read_single_trace(tmp_path)
    (epoch,) = of_type(records, "epoch")
    # the first 4 calls came before the first update: an inference window's, dropped
    assert epoch["loop_inference"]["apis"] == {"predict": 25}, proc.stderr[-2000:]
    assert epoch["loop_inference"]["rows"] == 24 + 28  # single rows, and the validation's 28
    live = [f for f in latest_findings(records) if f["kind"] == "predict_in_loop"]
    report = report_json(trace_files(tmp_path)[0])["runs"][0]["findings"]
    offline = [f for f in report if f["kind"] == "predict_in_loop"]
    assert len(live) == 1 and len(offline) == 1, proc.stderr[-2000:]
    assert live[0]["title"] == offline[0]["title"] and "model(x, training=False)" in offline[0]["hint"]
    assert "`model.predict()` called 25 times inside the training loop (2 rows a call" in live[0]["title"]
    assert "predict_in_loop" in proc.stderr  # said on the console as it ran
    assert [f["kind"] for f in report] == ["predict_in_loop"]


def test_the_model_called_in_a_custom_loop_is_quiet(tmp_path: Path) -> None:
    """The same loop calling the model (the maintainer's fix) and predicting once an epoch."""
    proc = run_python(PREDICT_IN_LOOP, tmp_path, env=child_env(tmp_path, CALL="1"))
    records = read_single_trace(tmp_path)
    (epoch,) = of_type(records, "epoch")
    assert epoch["loop_inference"] == {**epoch["loop_inference"], "calls": 1, "rows": 28}, proc.stderr[-2000:]
    assert not [f for f in latest_findings(records) if f["kind"] == "predict_in_loop"]


SCORING_LOOP = """
import epochwatch.hook
import numpy as np, tensorflow as tf, keras
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16), keras.layers.Dense(1)])
dataset = tf.data.Dataset.from_tensor_slices(np.random.rand(960, 8).astype("float32")).batch(16)
out = [model.predict(xb, verbose=0) for xb in dataset]
"""


def test_predict_per_batch_of_a_dataset_is_predict_in_loop(tmp_path: Path) -> None:
    """tensorflow#56674's scoring loop: `model.predict(xb)` per batch of a dataset, no
    training (250 calls of 64 rows: 23.4 s, against 0.65 s for one predict(dataset)): the
    windows of calls were judged for growth only, and it was silent."""
    run_python(SCORING_LOOP, tmp_path, env=child_env(tmp_path, EPOCHWATCH_WINDOW_CALLS="20"))
    records = read_single_trace(tmp_path)
    windows = of_type(records, "epoch")
    assert windows and all(w["inference"]["loops"]["rows"] == 320 for w in windows), windows[0]["inference"]
    (found,) = [f for f in latest_findings(records) if f["kind"] == "predict_in_loop"]
    assert found["severity"] == "warning"
    # Said at the first window, and at the run's end for all of them (its last word).
    said = f"`model.predict()` called {20 * len(windows)} times in a loop (16 rows a call"
    assert said in found["title"] and f"of windows 1-{len(windows)}" in found["title"], found["title"]
    assert "`model.predict(dataset)` once" in found["hint"]
