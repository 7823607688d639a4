# Source: https://github.com/tensorflow/tensorflow/issues/34025 ("Understanding warning '5 out of
# the last 5 calls to <function XXX> triggered tf.function retracing'"; a comment: "I was getting
# this same warning message. Using a LSTM model with variable sequence lengths"; the answer: "a
# tf-function can only compute the input for a fixed size ... align all the batches"), and the
# bucketing the docs recommend for it (https://github.com/tensorflow/tensorflow/pull/47541,
# `bucket_by_sequence_length` and its `pad_to_bucket_boundary` pitfall). An Embedding + LSTM(32)
# classifier over 1,600 token sequences of 5-119 tokens, `@tf.function train_step`, 10 epochs.
# Default: `bucket_by_sequence_length(boundaries [25, 50, 75, 100, 120], batch 32,
# pad_to_bucket_boundary=True, drop_remainder=True)`: 5 shapes, traced in the first epoch, then
# none (bounded by design).
# RS_PADDED=1: `padded_batch(32)` (each batch padded to its own longest): a new length keeps
# coming for several epochs, ~60 shapes in all, fewer each epoch.
# RS_SIG=1: the padded twin with `input_signature` (None in the time axis): one trace.
# Truth: traces per epoch, seconds and RSS (printed by the plain run).
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

PADDED = os.environ.get("RS_PADDED") == "1" or os.environ.get("RS_SIG") == "1"
SIG = os.environ.get("RS_SIG") == "1"
rng = np.random.default_rng(34025)
lengths = rng.integers(5, 120, 1600)
seqs = [rng.integers(1, 5000, n).astype(np.int32) for n in lengths]
labels = (lengths > 60).astype(np.int32)
ds = tf.data.Dataset.from_generator(
    lambda: zip(seqs, labels, strict=False),
    output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)),
).cache()
if PADDED:
    batches = ds.shuffle(1600, seed=1).padded_batch(32)
else:
    batches = ds.shuffle(1600, seed=1).bucket_by_sequence_length(
        lambda s, _y: tf.shape(s)[0],
        [25, 50, 75, 100, 120],
        [32] * 6,
        pad_to_bucket_boundary=True,
        drop_remainder=True,
    )
model = keras.Sequential([keras.layers.Embedding(5000, 32), keras.layers.LSTM(32), keras.layers.Dense(1)])
optimizer = keras.optimizers.Adam(1e-3)
loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
traces = [0]


def step(xb, yb):
    traces[0] += 1
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True)[:, 0])
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    return loss


if SIG:
    train_step = tf.function(
        step, input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)]
    )
else:
    train_step = tf.function(step)
_hook.mark()
per_epoch, secs, rss = [], [], []
for _epoch in range(10):
    t0, before = time.perf_counter(), traces[0]
    for xb, yb in batches:
        train_step(xb, yb)
    per_epoch.append(traces[0] - before)
    secs.append(round(time.perf_counter() - t0, 2))
    rss.append(round(_hook._rss_mib()))
print(f"TRUTH padded={PADDED} signature={SIG}; traces per epoch {per_epoch}; epoch s {secs}; RSS MiB {rss}")
