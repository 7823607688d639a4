# Source: https://github.com/tensorflow/tensorflow/issues/30561 ("Eager execution drastically
# increases `tf.keras.Model.fit` runtimes": an LSTM(100) + Dense over (None, 100) inputs) and
# https://github.com/USGS-R/river-dl/pull/109 (`run_eagerly=True` left on from debugging: "runs
# ~3x slower per training step"; the PR removed it). An LSTM regressor compiled with
# `run_eagerly=True`, 6 epochs. `RS_GRAPH=1`: the default compile (graph mode). `RS_GLOBAL=1`:
# `tf.config.run_functions_eagerly(True)` left on at the top of the script instead (the advice
# users get for debugging a `tf.function`; it also makes every `@tf.function` and Keras's own
# steps run eagerly).
# Truth (printed): the mode and each epoch's seconds; with PLAIN=1 also a graph-mode epoch on the
# same data for comparison (so the plain run says how much the eager mode costs).
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

GRAPH = os.environ.get("RS_GRAPH") == "1"
GLOBAL = os.environ.get("RS_GLOBAL") == "1"
if GLOBAL:
    tf.config.run_functions_eagerly(True)
rng = np.random.default_rng(0)
x = rng.random((1536, 20, 16), dtype=np.float32)
y = x.sum(axis=(1, 2))[:, None].astype("float32") / 100


def build(eager):
    model = keras.Sequential([keras.Input((20, 16)), keras.layers.LSTM(48), keras.layers.Dense(1)])
    model.compile("adam", "mse", run_eagerly=eager)
    return model


class Times(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.t = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.t.append(round(time.perf_counter() - self.t0, 2))


model = build(eager=not GRAPH and not GLOBAL)
_hook.mark()
times = Times()
model.fit(x, y, epochs=6, batch_size=32, callbacks=[times], verbose=0)
mode = "graph" if GRAPH else ("run_functions_eagerly(True)" if GLOBAL else "run_eagerly=True")
line = f"TRUTH {mode}: epochs {times.t} s"
if os.environ.get("PLAIN") == "1" and not GRAPH:
    tf.config.run_functions_eagerly(False)
    ref, t2 = build(eager=False), Times()
    ref.fit(x, y, epochs=3, batch_size=32, callbacks=[t2], verbose=0)
    line += f"; the same in graph mode: {t2.t} s"
print(line)
