# Source: https://github.com/keras-team/keras-cv/issues/886 ("5 out of the last 9 calls to
# <function train_step> triggered tf.function retracing") and tensorflow#34025: a GradientTape
# loop with a `@tf.function` train_step over a `padded_batch` dataset of variable-length token
# sequences. Default: fixed-length sequences, 1000 examples in batches of 64 (the last batch
# of 40 makes exactly one more trace, then nothing: healthy). `RS_VARLEN=1`: lengths 20-120,
# `padded_batch` pads each batch to its own longest, so nearly every batch is a new shape (a
# retrace storm). `RS_REDUCE=1`: `@tf.function(reduce_retracing=True)`, TF's own fix named in the
# warning (after the second shape it traces one generic [None, None] function: healthy).
# Truth: the traces counted by a Python side effect inside the function, per epoch.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

VARLEN = os.environ.get("RS_VARLEN") == "1"
REDUCE = os.environ.get("RS_REDUCE") == "1"
rng = np.random.default_rng(7)
N, VOCAB, EPOCHS = 1000, 5000, 12
lengths = rng.integers(20, 121, N) if VARLEN else np.full(N, 80)
seqs = [rng.integers(1, VOCAB, n).astype("int32") for n in lengths]
labels = rng.integers(0, 2, N).astype("float32")
ds = (
    tf.data.Dataset.from_generator(
        lambda: zip(seqs, labels, strict=True),
        output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.float32)),
    )
    .shuffle(N)
    .padded_batch(64)
    .prefetch(2)
)

model = tf.keras.Sequential(
    [
        tf.keras.layers.Embedding(VOCAB, 64),
        tf.keras.layers.Conv1D(64, 5, activation="relu"),
        tf.keras.layers.GlobalMaxPooling1D(),
        tf.keras.layers.Dense(1),
    ]
)
optimizer = tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.BinaryCrossentropy(from_logits=True)
traces = [0]


@tf.function(reduce_retracing=REDUCE)
def train_step(x, y):
    traces[0] += 1  # runs only while tracing
    with tf.GradientTape() as tape:
        logits = model(x, training=True)[:, 0]
        loss = loss_fn(y, logits)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return loss


_hook.mark()
per_epoch, times = [], []
for epoch in range(EPOCHS):
    t, before = time.perf_counter(), traces[0]
    for x, y in ds:
        loss = train_step(x, y)
    per_epoch.append(traces[0] - before)
    times.append(time.perf_counter() - t)
    print(f"epoch {epoch + 1} loss {float(loss):.4f}")
if os.environ.get("PLAIN") == "1":
    print(
        f"TRUTH varlen={VARLEN} reduce_retracing={REDUCE}: traces per epoch {per_epoch};"
        f" epoch seconds {[round(v, 2) for v in times]}"
    )
