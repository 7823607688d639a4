# Source: https://github.com/tensorflow/tensorflow/issues/56258 ("Dataset from generator is far
# slower than from tensor slices, anything I can improve?": "from_generator is much slower than
# from_tensor_slices (more than 10x slower). Also the performance of from_generator greatly drops
# when the number of yield elements increases ... If I want to have a dataset with 10 elements for
# each records, how can I get better performance?"). The user's shape: a Python generator that
# yields one record of 10 features at a time, `from_generator(..., output_signature=...)`,
# `.batch()`, into training. Here each record is built in Python from a raw row (10 scalar
# features, a little per-record arithmetic, as a CSV-row parser would), 12,800 records, batch
# 128, a small MLP `fit`, 8 epochs.
# RS_PREFETCH=1: the user's first attempt, `.prefetch(tf.data.AUTOTUNE)` after the batch (the
# generator still holds the GIL and runs one record at a time).
# RS_SLICES=1: the twin, the same rows through `from_tensor_slices`, batched, then one vectorised
# map per batch, and prefetch.
# Truth: seconds per epoch and the generator's own seconds per epoch (printed by the plain run).
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

PREFETCH = os.environ.get("RS_PREFETCH") == "1"
SLICES = os.environ.get("RS_SLICES") == "1"
rng = np.random.default_rng(56258)
raw = rng.random((12800, 10)) * 100.0
target = (raw[:, 0] > 50).astype(np.int32)
gen_s = [0.0]


def records():
    t0 = time.perf_counter()
    for row, label in zip(raw, target, strict=False):
        feats = [float(v) for v in row]  # one record of 10 elements, parsed field by field
        feats = [(v - 50.0) / 29.0 for v in feats]
        feats = [v if abs(v) < 3 else 3.0 * (1 if v > 0 else -1) for v in feats]
        yield np.array(feats, np.float32), np.int32(label)
    gen_s[0] += time.perf_counter() - t0


if SLICES:  # batched first, then one vectorised map per batch
    ds = (
        tf.data.Dataset.from_tensor_slices((raw.astype(np.float32), target))
        .batch(128)
        .map(lambda f, y: (tf.clip_by_value((f - 50.0) / 29.0, -3.0, 3.0), y))
    )
else:
    ds = tf.data.Dataset.from_generator(
        records, output_signature=(tf.TensorSpec([10], tf.float32), tf.TensorSpec([], tf.int32))
    ).batch(128)
if PREFETCH or SLICES:
    ds = ds.prefetch(tf.data.AUTOTUNE)
model = keras.Sequential(
    [
        keras.Input((10,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(2),
    ]
)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
secs, gens, t = [], [], [0.0]


class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        t[0], self.g = time.perf_counter(), gen_s[0]

    def on_epoch_end(self, epoch, logs=None):
        secs.append(round(time.perf_counter() - t[0], 2))
        gens.append(round(gen_s[0] - self.g, 2))


_hook.mark()
model.fit(ds, epochs=8, verbose=0, callbacks=[Timer()])
print(f"TRUTH slices={SLICES} prefetch={PREFETCH}; epoch s {secs}; generator s per epoch {gens}")
