"""`import epochwatch.hook` on real Keras training (TF on the CPU), one fresh process per test."""

from __future__ import annotations

from pathlib import Path

from epochwatch.trace.schema import SCHEMA_VERSION
from tests.fakes import with_fake_nvml
from tests.support import child_env, of_type, read_single_trace, report_json, run_python, trace_files

MODEL = """
import numpy as np
def make_data(n=512):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, (x.sum(axis=1) > 0).astype("float32")
def make_model(keras):
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return m
"""


def test_fit_with_validation_and_callbacks_writes_one_run(tmp_path: Path) -> None:
    code = (
        "import epochwatch.hook\nimport keras\n"
        + MODEL
        + """
x, y = make_data()
model = make_model(keras)
cbs = [keras.callbacks.ModelCheckpoint("ckpt/e{epoch:02d}.weights.h5", save_weights_only=True),
       keras.callbacks.ModelCheckpoint("ckpt/best.weights.h5", save_weights_only=True, save_best_only=True),
       keras.callbacks.EarlyStopping(monitor="val_loss", patience=50)]
model.fit(x, y, batch_size=32, epochs=4, validation_split=0.25, callbacks=cbs, verbose=0)
"""
    )
    env = with_fake_nvml(child_env(tmp_path))
    run_python(code, tmp_path, env=env)
    records = read_single_trace(tmp_path)

    assert records[0]["type"] == "run_start" and len(of_type(records, "run_start")) == 1
    assert records[-1]["type"] == "run_end" and records[-1]["ended"] == "completed"
    start = records[0]
    assert start["schema"] == SCHEMA_VERSION and start["mode"] == "embedded"
    assert start["env"]["packages"]["tensorflow"] and start["env"]["packages"]["keras"].startswith("3.")
    assert start["env"]["gpus"][0]["name"] == "NVIDIA Fake A100" and start["env"]["driver"] == "550.54.15"
    training = start["training"]
    assert training["model"]["params"] == 8 * 16 + 16 + 16 + 1
    assert training["optimizer"]["class"] == "Adam" and training["batch_size"] == 32
    assert training["epochs"] == 4 and training["steps_per_epoch"] == 12
    assert set(training["callbacks"]) == {"ModelCheckpoint", "EarlyStopping"}
    assert training["watched"] == {str(tmp_path / "ckpt"): "checkpoint"}

    epochs = of_type(records, "epoch")
    assert [e["epoch"] for e in epochs] == [0, 1, 2, 3]
    for i, e in enumerate(epochs):
        assert e["source"] == "keras" and e["fit"] == 0
        assert e["seconds"] > 0 and 0 <= e["overhead_seconds"] < e["seconds"]
        assert e["end"] >= e["start"]
        assert e["steps"] == 12
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(e["metrics"])
        assert abs(e["lr"] - 1e-3) < 1e-9
        assert e["iterations"] == 12 * (i + 1)
        assert e["batch_size"] == 32
        assert e["val_seconds"] > 0
        assert e["step_seconds"]["min"] <= e["step_seconds"]["median"] <= e["step_seconds"]["max"]
        assert e["host"]["rss_bytes"] > 50 * 2**20 and e["host"]["threads"] >= 1
        device = e["gpu"]["devices"][0]
        assert device["process_memory_bytes"] >= 2**30 and device["memory_total_bytes"] == 40 * 2**30
        assert device["throttle_reasons"] == ["sw_power_cap"]
        # per-process utilisation (the fake: this process 40%, pid 1 idle beside it)
        assert device["process_sm_pct"] == 40.0 and device["others_sm_pct"] == 0.0
        # the user's callbacks' own epoch-end time, by class, and their batch hooks' (always on)
        batch_hook = "ModelCheckpoint.on_train_batch_end"  # it checks its save_freq every batch
        assert set(e["callbacks"]["by_class"]) == {"ModelCheckpoint", "EarlyStopping", batch_hook}
        assert 0 < e["callbacks"]["batch_seconds"] == e["callbacks"]["by_class"][batch_hook]
        assert 0 <= e["callbacks"]["seconds"] < e["seconds"]
    # Keras traces its train step in the first epoch and (here) never again.
    assert epochs[0]["retraces"]["new"] >= 1
    assert all(e["retraces"]["new"] == 0 for e in epochs[1:])
    # The checkpoint directory is watched and grows by one file per epoch.
    ckpt = str(tmp_path / "ckpt")
    files = [d["files"] for e in epochs for d in e.get("dirs", []) if d["path"] == ckpt]
    assert files and files[-1] >= 3 and files == sorted(files)
    fit_end = of_type(records, "fit_end")
    assert len(fit_end) == 1 and fit_end[0]["ended"] == "completed" and fit_end[0]["epochs_completed"] == 4
    # A save_best_only save says the value it was made at (a resumed run's is compared with it).
    best = [r["best"] for r in of_type(records, "save") if r["path"].endswith("best.weights.h5")]
    val_losses = [e["metrics"]["val_loss"] for e in epochs]
    assert best and best[0] == {"monitor": "val_loss", "value": val_losses[0], "lower_is_better": True}, best
    assert [b["value"] for b in best] == sorted({b["value"] for b in best}, reverse=True)
    assert all("best" not in r for r in of_type(records, "save") if "best.weights" not in r["path"])


def test_keras_imported_before_the_hook_and_no_gpu(tmp_path: Path) -> None:
    code = (
        "import tensorflow as tf\nkeras = tf.keras\n"
        + MODEL
        + """
x, y = make_data()
model = make_model(keras)
import epochwatch.hook  # after TF and Keras are in use
model.fit(x, y, batch_size=64, epochs=2, verbose=0)
model.fit(x, y, batch_size=64, epochs=3, initial_epoch=2, verbose=0)
"""
    )
    proc = run_python(code, tmp_path)
    records = read_single_trace(tmp_path)
    epochs = of_type(records, "epoch")
    assert [(e["fit"], e["epoch"]) for e in epochs] == [(0, 0), (0, 1), (1, 2)]
    assert [f["fit"] for f in of_type(records, "fit_start")] == [0, 1]
    assert all("gpu" not in e for e in epochs)
    # No GPU here: how this machine is, not news: said only with EPOCHWATCH_DEBUG=1.
    assert "GPU metrics unavailable" not in proc.stderr


def test_run_that_raises_mid_epoch_keeps_earlier_epochs(tmp_path: Path) -> None:
    code = (
        "import epochwatch.hook\nimport keras\n"
        + MODEL
        + """
class Boom(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if self._epoch == 2 and batch == 3:
            raise ValueError("data loader exploded")
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
x, y = make_data()
make_model(keras).fit(x, y, batch_size=32, epochs=5, callbacks=[Boom()], verbose=0)
"""
    )
    proc = run_python(code, tmp_path, check=False)
    assert proc.returncode == 1 and "data loader exploded" in proc.stderr
    records = read_single_trace(tmp_path)
    assert [e["epoch"] for e in of_type(records, "epoch")] == [0, 1]
    (fit_end,) = of_type(records, "fit_end")
    assert fit_end["ended"] == "raised" and fit_end["exception"] == "ValueError"
    end = records[-1]
    assert end["type"] == "run_end" and end["ended"] == "raised"
    assert end["exception"] == "ValueError" and end["message"] == "data loader exploded"


def test_a_first_fit_that_raises_before_it_begins_is_written(tmp_path: Path) -> None:
    """Keras checks the data before any callback runs: the fit never began, yet the trace
    says what happened (run_start, the fit's start, its error end)."""
    code = (
        "import epochwatch.hook\nimport keras, numpy as np\n"
        + MODEL
        + """
model = make_model(keras)
model.fit(np.zeros((8, 8), "float32"), np.zeros((9,), "float32"), epochs=2, verbose=0)
"""
    )
    proc = run_python(code, tmp_path, check=False)
    assert proc.returncode == 1 and "ValueError" in proc.stderr
    records = read_single_trace(tmp_path)
    types = [r["type"] for r in records if r["type"] != "watch"]
    assert types == ["run_start", "fit_start", "fit_end", "run_end"], types
    fit_start, fit_end = of_type(records, "fit_start")[0], of_type(records, "fit_end")[0]
    assert fit_start["fit"] == fit_end["fit"] == 0 and fit_start["model"]["class"] == "Sequential"
    assert fit_end["ended"] == "raised" and fit_end["exception"] == "ValueError"
    assert fit_end["epochs_completed"] == 0
    assert records[-1]["ended"] == "raised" and records[-1]["exception"] == "ValueError"


def test_disabled_writes_nothing(tmp_path: Path) -> None:
    code = (
        "import epochwatch.hook\nimport keras\n"
        + MODEL
        + "x, y = make_data()\nmake_model(keras).fit(x, y, epochs=2, verbose=0)\n"
    )
    proc = run_python(code, tmp_path, env=child_env(tmp_path, EPOCHWATCH_DISABLE="1"))
    assert trace_files(tmp_path) == []
    assert not (tmp_path / "traces").exists()
    assert "epochwatch" not in proc.stderr


def test_training_survives_every_part_failing(tmp_path: Path) -> None:
    """Every sampler, the retrace ledger and the allocator source raise: training must not notice."""
    code = (
        """
import epochwatch.hook
from epochwatch.samplers import host, nvml, dirs
from epochwatch.integrations import tf as tf_integration
def boom(*a, **k):
    raise RuntimeError("sampler on fire")
host.HostSampler.sample = boom
nvml.NvmlSampler.sample = boom
dirs.DirsSampler.sample = boom
tf_integration.RetraceLedger.drain = boom
tf_integration.RetraceLedger.traced = boom
tf_integration.allocator_source = lambda: boom
import keras
"""
        + MODEL
        + """
x, y = make_data()
h = make_model(keras).fit(x, y, batch_size=32, epochs=4, verbose=0)
assert len(h.history["loss"]) == 4
print("TRAINED")
"""
    )
    env = with_fake_nvml(child_env(tmp_path))
    proc = run_python(code, tmp_path, env=env)
    assert "TRAINED" in proc.stdout
    for part in ("host sampler", "gpu sampler", "dirs sampler", "retrace tracking", "tf_memory"):
        assert proc.stderr.count(f"epochwatch: {part} disabled") == 1, (part, proc.stderr)
    records = read_single_trace(tmp_path)
    epochs = of_type(records, "epoch")
    assert len(epochs) == 4
    assert all("host" not in e and "gpu" not in e and "retraces" not in e for e in epochs)
    assert set(records[-1]["disabled"]) >= {"host sampler", "gpu sampler", "retrace tracking"}


def test_unwritable_trace_dir_never_breaks_training(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the trace directory should be")
    code = (
        "import epochwatch.hook\nimport keras\n"
        + MODEL
        + "x, y = make_data()\nmake_model(keras).fit(x, y, epochs=2, verbose=0)\nprint('TRAINED')\n"
    )
    proc = run_python(code, tmp_path, env=child_env(tmp_path, EPOCHWATCH_DIR=str(blocker / "traces")))
    assert "TRAINED" in proc.stdout
    assert proc.stderr.count("epochwatch: trace writer disabled") == 1
    assert "Traceback" not in proc.stderr


def test_clear_session_is_counted_through_every_alias(tmp_path: Path) -> None:
    """A loop of fresh models calling `tf.keras.backend.clear_session()` (issue 23): every
    name of the function is still one function after the hook, and each call is counted."""
    code = (
        "import epochwatch.hook\nimport tensorflow as tf\nimport keras\n"
        + MODEL
        + """
aliases = [keras.backend.clear_session, keras.utils.clear_session, tf.keras.backend.clear_session,
           tf.compat.v1.keras.backend.clear_session]
assert all(a is aliases[0] for a in aliases), aliases
assert getattr(aliases[0], "__epochwatch__", False)
x, y = make_data(128)
for _ in range(3):
    tf.keras.backend.clear_session()
    make_model(tf.keras).fit(x, y, batch_size=64, epochs=1, verbose=0)
"""
    )
    run_python(code, tmp_path)
    fits = of_type(read_single_trace(tmp_path), "fit_start")
    assert [f["clear_session_calls"] for f in fits] == [1, 2, 3]


def test_a_fit_left_running_eagerly_is_said_once_live_and_in_report(tmp_path: Path) -> None:
    """tensorflow#30561 / river-dl#109: `compile(run_eagerly=True)` left from debugging; a
    graph-mode fit before it says nothing, the eager ones one finding, live and offline."""
    code = (
        "import epochwatch.hook\nimport keras\n"
        + MODEL
        + """
x, y = make_data(256)
model = make_model(keras)
model.fit(x, y, batch_size=64, epochs=2, verbose=0)
for _ in range(2):
    model.compile(optimizer="adam", loss="binary_crossentropy", run_eagerly=True)
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
"""
    )
    run_python(code, tmp_path)
    records = read_single_trace(tmp_path)
    fits = of_type(records, "fit_start")
    assert [(f["run_eagerly"], f["functions_run_eagerly"]) for f in fits] == [
        (False, False),
        (True, False),
        (True, False),
    ]
    live = [f for f in of_type(records, "finding") if f["kind"] == "eager_execution"]
    assert len(live) == 1 and live[0]["severity"] == "info"
    assert "compile(run_eagerly=True)" in live[0]["title"] and live[0]["evidence"]["fit"] == 1
    report = report_json(trace_files(tmp_path)[0])
    said = [f for f in report["runs"][0]["findings"] if f["kind"] == "eager_execution"]
    assert [(f["title"], f["epoch"]) for f in said] == [(live[0]["title"], live[0]["epoch"])]


def test_a_debugger_dump_turned_on_is_watched_and_on_each_fit(tmp_path: Path) -> None:
    """The Debugger V2 guide's first line, left in: its dump directory is watched (role
    tensorboard) and each fit_start says its settings, for the disk finding's fix."""
    code = (
        "import epochwatch.hook\nimport keras, os, tensorflow as tf\n"
        + MODEL
        + """
dump = os.path.join(os.getcwd(), "tfdbg")
tf.debugging.experimental.enable_dump_debug_info(dump, tensor_debug_mode="NO_TENSOR")
x, y = make_data(128)
make_model(keras).fit(x, y, batch_size=64, epochs=1, verbose=0)
"""
    )
    run_python(code, tmp_path)
    records = read_single_trace(tmp_path)
    dump = str(tmp_path / "tfdbg")
    (fit,) = of_type(records, "fit_start")
    assert fit["debug_dump"] == {
        "dump_root": dump,
        "tensor_debug_mode": "NO_TENSOR",
        "circular_buffer_size": 1000,
    }
    assert {"path": dump, "role": "tensorboard"}.items() <= next(
        r for r in of_type(records, "watch") if r["path"] == dump
    ).items()


def test_a_custom_loop_under_run_functions_eagerly(tmp_path: Path) -> None:
    """`tf.config.run_functions_eagerly(True)` makes the loop's `@tf.function` step run op
    by op: recorded in the loop's automatic fit_start, and said."""
    code = """
import epochwatch.hook
import numpy as np
import tensorflow as tf
import keras
tf.config.run_functions_eagerly(True)
x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, x.sum(axis=1, keepdims=True))).batch(32)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
opt = keras.optimizers.SGD(0.01)
@tf.function
def step(a, b):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(a) - b) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
for _ in range(3):
    for a, b in ds:
        step(a, b)
"""
    run_python(code, tmp_path)
    records = read_single_trace(tmp_path)
    fits = of_type(records, "fit_start")
    assert fits and fits[0]["source"] == "optimizer" and fits[0]["functions_run_eagerly"] is True
    live = [f for f in of_type(records, "finding") if f["kind"] == "eager_execution"]
    assert len(live) == 1 and "run_functions_eagerly(True)" in live[0]["title"]


def test_iterations_of_an_optimizer_that_accumulates_gradients(tmp_path: Path) -> None:
    """`Adam(gradient_accumulation_steps=4)` (tf-keras#107): Keras counts one iteration per
    4 batches; the epoch records' `iterations` are the optimizer's, not batches added up."""
    code = (
        "import epochwatch.hook\nimport keras\n"
        + MODEL
        + """
x, y = make_data(512)
model = make_model(keras)
opt = keras.optimizers.Adam(1e-3, gradient_accumulation_steps=4)
model.compile(optimizer=opt, loss="binary_crossentropy")
model.fit(x, y, batch_size=32, epochs=4, verbose=0)
print("ITERATIONS", int(opt.iterations))
"""
    )
    proc = run_python(code, tmp_path)
    assert "ITERATIONS 16" in proc.stdout
    epochs = of_type(read_single_trace(tmp_path), "epoch")
    assert [e["iterations"] for e in epochs] == [4, 8, 12, 16] and all(e["steps"] == 16 for e in epochs)


def test_a_gan_is_named_by_the_optimizers_its_train_step_uses(tmp_path: Path) -> None:
    """keras#16019: `compile(d_optimizer, g_optimizer)` calls `super().compile()`, which puts
    Keras's default RMSprop on `model.optimizer`; `train_step` uses the two Adams."""
    code = """
import epochwatch.hook
import numpy as np
import tensorflow as tf
import keras
class GAN(keras.Model):
    def __init__(self):
        super().__init__()
        self.g = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)])
        self.d = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    def compile(self, d_optimizer, g_optimizer, **kw):
        super().compile(**kw)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer
    def train_step(self, real):
        z = keras.random.normal((tf.shape(real)[0], 4))
        with tf.GradientTape() as tape:
            d_loss = tf.reduce_mean(self.d(self.g(z))) - tf.reduce_mean(self.d(real))
        grads = tape.gradient(d_loss, self.d.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.d.trainable_weights))
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(self.d(self.g(z)))
        grads = tape.gradient(g_loss, self.g.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.g.trainable_weights))
        return {"d_loss": d_loss}
gan = GAN()
gan.compile(keras.optimizers.Adam(2e-4), keras.optimizers.Adam(3e-4))
gan.fit(np.ones((128, 8), "float32"), epochs=2, batch_size=32, verbose=0)
"""
    run_python(code, tmp_path)
    records = read_single_trace(tmp_path)
    fit = of_type(records, "fit_start")[0]
    assert fit["optimizer"]["class"] == "Adam" and fit["optimizer"]["attribute"] == "d_optimizer"
    assert abs(fit["optimizer"]["config"]["learning_rate"] - 2e-4) < 1e-9
    assert fit["optimizers"] == {"d_optimizer": "Adam", "g_optimizer": "Adam"}
    assert fit["compiled_optimizer_unused"] == "RMSprop"
    epochs = of_type(records, "epoch")
    assert [e["iterations"] for e in epochs] == [4, 8] and abs(epochs[0]["lr"] - 2e-4) < 1e-9
