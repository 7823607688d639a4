# Source: https://github.com/tensorflow/tensorflow/issues/38827 ("Extremely slow retraining after
# loading model": "loading a model from a `.h5` file, and fitting more data to it- the training
# process becomes incredibly slow compared to initial training. Slow as in 10 seconds to 43
# seconds per epoch"; also tensorflow#38710 and #39459). The issue's script: dummy data of
# (10000, 51), a stacked LSTM with Dropout and BatchNormalization, trained, saved, deleted,
# loaded and fitted again, in one process. Here: 3 epochs, save, `del model`, `load_model`,
# 5 more epochs (second phase). RS_JIT=1 compiles with `jit_compile=True` (the first epoch of
# each phase then pays XLA's compile). RS_H5=1 saves `.h5` as the issue did (default `.keras`).
# Truth: every epoch's seconds, printed by the plain run: only the first epoch of each phase is
# slow (tracing, and XLA with RS_JIT=1); the loaded model's later epochs are as fast as before.
# No slowdown should be said: a first epoch after a load is a warm-up.
import os
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf
from tensorflow.keras.layers import LSTM, BatchNormalization, Dense, Dropout
from tensorflow.keras.models import Sequential, load_model

JIT = os.environ.get("RS_JIT") == "1"
rng = np.random.default_rng(0)
x = rng.random((6000, 10, 5), dtype=np.float32)  # the 50 predictors as 10 steps of 5
y = x.mean(axis=(1, 2)) + 0.01 * rng.standard_normal(6000).astype("float32")


class EpochTimes(tf.keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.secs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.secs.append(round(time.perf_counter() - self.t, 2))


model = Sequential(
    [
        tf.keras.Input((10, 5)),
        LSTM(64, return_sequences=True),
        Dropout(0.2),
        BatchNormalization(),
        LSTM(64),
        Dropout(0.2),
        BatchNormalization(),
        Dense(32, activation="relu"),
        Dense(1),
    ]
)
model.compile(optimizer="adam", loss="mse", jit_compile=JIT)
_hook.mark()
first = EpochTimes()
model.fit(x, y, epochs=3, batch_size=64, verbose=0, callbacks=[first])
path = os.path.join(
    tempfile.mkdtemp(prefix="rs_38827_"), "model.h5" if os.environ.get("RS_H5") else "model.keras"
)
model.save(path)
del model
model = load_model(path)
if JIT:  # load_model compiles with the saved config; jit_compile is not part of it
    model.jit_compile = True
second = EpochTimes()
model.fit(x, y, epochs=5, batch_size=64, verbose=0, callbacks=[second])
print(f"TRUTH epoch seconds before save {first.secs}, after load_model {second.secs}")
