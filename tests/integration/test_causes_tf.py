"""Causes on real TensorFlow training: waiting is not contention, and a distribution
strategy's own tf.data functions are not a retrace storm (while a real one still is).

Fresh interpreters with `import epochwatch.hook` (embedded mode); tiny models.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import latest_findings, of_type, private_env, read_single_trace, run_python

WAITING = """
import socket, threading, time
import epochwatch.hook
import numpy as np
import keras

np.random.seed(0)
x = np.random.rand(128, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mse")

held = threading.Lock(); held.acquire()  # nobody ever releases it
quiet, _peer = socket.socketpair()  # nothing is ever sent

class Blocker(keras.callbacks.Callback):
    # Blocks a little longer every epoch: on a lock, on a local socket, in a sleep.
    def on_epoch_end(self, epoch, logs=None):
        wait = 0.04 * epoch
        if epoch % 3 == 0:
            held.acquire(timeout=wait)
        elif epoch % 3 == 1:
            quiet.settimeout(wait)
            try:
                quiet.recv(1)
            except socket.timeout:
                pass
        else:
            time.sleep(wait)

model.fit(x, y, epochs=24, batch_size=32, verbose=0, callbacks=[Blocker(), keras.callbacks.History()])
"""

MIRRORED = """
import sys
import epochwatch.hook
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
import numpy as np

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
np.random.seed(0)
x = np.random.rand(64, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)
with strategy.scope():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")

class NewTrainFunction(keras.callbacks.Callback):
    # A genuine storm: the train function is made anew every epoch, so it is traced anew.
    def on_epoch_end(self, epoch, logs=None):
        self.model.make_train_function(force=True)

model.fit(x, y, epochs=6, batch_size=32, verbose=0, callbacks=[NewTrainFunction()] if STORM else [])
"""


def test_a_callback_that_blocks_longer_is_waiting_not_contention(tmp_path: Path) -> None:
    proc = run_python(WAITING, tmp_path, env=private_env(tmp_path))
    records = read_single_trace(tmp_path)
    findings = latest_findings(records)  # raised early (epoch ~7) it may name its cause in an update
    assert [f for f in findings if f["kind"] == "host_contention"] == []
    (slow,) = [f for f in findings if f["kind"] == "slowdown"]
    assert "likely cause: time in callback Blocker" in proc.stderr, proc.stderr[-3000:]
    assert "the process waits" in slow["title"], slow["title"]
    waiting = slow["evidence"]["waiting"]
    assert waiting["where"] == "callback Blocker (on_epoch_end)", waiting
    assert waiting["cpu_per_wall_second"][1] < waiting["cpu_per_wall_second"][0]
    causes = slow["evidence"]["likely_causes"]
    assert causes and causes[0]["series"] == "time in callback Blocker" and causes[0]["test"] == "accounts"
    epochs = of_type(records, "epoch")
    assert all(set(e["callbacks"]["by_class"]) == {"Blocker", "History"} for e in epochs)


def _mirrored(tmp_path: Path, storm: bool) -> list[dict[str, object]]:
    run_python(MIRRORED.replace("STORM", str(storm)), tmp_path, env=private_env(tmp_path))
    records = read_single_trace(tmp_path)
    (fit,) = of_type(records, "fit_start")
    assert fit["distribution"] == {"strategy": "MirroredStrategy", "replicas": 2, "workers": 1}
    # tf.data's per-iterator functions are traced every epoch and still counted
    assert all(e["retraces"]["functions"].get("_next_func") for e in of_type(records, "epoch")[1:])
    return of_type(records, "finding")


def test_healthy_mirrored_strategy_fit_gets_no_warning(tmp_path: Path) -> None:
    findings = _mirrored(tmp_path, storm=False)
    assert [f for f in findings if f["severity"] != "info"] == []


def test_retrace_storm_under_mirrored_strategy_is_still_caught(tmp_path: Path) -> None:
    findings = _mirrored(tmp_path, storm=True)
    storms = {f["target"] for f in findings if f["kind"] == "retrace_storm"}
    assert storms and storms <= {"one_step_on_data", "multi_step_on_iterator"}, storms
