# Source: https://github.com/tensorflow/tensorflow/issues/62198 ("[XLA] using auto-clustering ...
# causes multiple compilation with variable seq. len.": a model over variable-length time series,
# fast on one fixed batch, "infinitely slow" once `for batch in train_dataset` feeds batches of
# different lengths, XLA recompiling) and tf#50198 (jit_compile in a GradientTape loop). Here: a
# Conv1D speech-like encoder, `@tf.function(jit_compile=True)` train step, a `padded_batch(16)`
# pipeline over 768 utterances of 20-400 frames (log-normal, median 74) x 40 features, shuffled
# each epoch (each batch padded to its own longest: new shapes every epoch), 6 epochs of 48 batches.
# RS_BUCKET=1: `bucket_by_sequence_length` padded to boundaries 64/96/144/401, drop_remainder
# (4 shapes, compiled once each). Both were run in session 13.
# RS_SIG=1: the fix epochwatch offers, an `input_signature` with None in the length: one trace,
# but XLA still compiles once per concrete shape (its own cache), so the time stays.
# RS_FIT=1: the same model through `compile(jit_compile=True)` + `fit` on the padded_batch dataset.
# Truth: traces of the step (a Python counter in its body: each is an XLA compile too), distinct
# batch shapes, epoch times.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

BUCKET = os.environ.get("RS_BUCKET") == "1"
FIT = os.environ.get("RS_FIT") == "1"
SIG = os.environ.get("RS_SIG") == "1"
rng = np.random.default_rng(62198)
lengths = np.clip(rng.lognormal(4.3, 0.45, 768), 20, 400).astype(int)
feats = [rng.standard_normal((n, 40)).astype("float32") for n in lengths]
labels = rng.integers(0, 8, 768)


def gen():
    yield from zip(feats, labels, strict=True)


ds = (
    tf.data.Dataset.from_generator(
        gen, output_signature=(tf.TensorSpec((None, 40), tf.float32), tf.TensorSpec((), tf.int64))
    )
    .cache()
    .shuffle(768, seed=1)
)
if BUCKET:
    ds = ds.bucket_by_sequence_length(
        lambda x, y: tf.shape(x)[0],
        [64, 96, 144, 401],
        [16] * 5,
        pad_to_bucket_boundary=True,
        drop_remainder=True,
    )

else:
    ds = ds.padded_batch(16)
ds = ds.prefetch(2)

model = tf.keras.Sequential(
    [
        tf.keras.Input((None, 40)),
        tf.keras.layers.Conv1D(128, 5, padding="same", activation="relu"),
        tf.keras.layers.Conv1D(128, 5, padding="same", activation="relu"),
        tf.keras.layers.GlobalAveragePooling1D(),
        tf.keras.layers.Dense(8),
    ]
)
_hook.mark()
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
traces, shapes, times = [0], set(), []
if FIT:
    model.compile("adam", loss_fn, jit_compile=True)
    t0 = time.perf_counter()
    model.fit(ds, epochs=6, verbose=0)
    times.append(time.perf_counter() - t0)
else:
    opt = tf.keras.optimizers.Adam()

    sig = [tf.TensorSpec((None, None, 40), tf.float32), tf.TensorSpec((None,), tf.int64)] if SIG else None

    @tf.function(jit_compile=True, input_signature=sig)
    def train_step(x, y):
        traces[0] += 1
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        opt.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=False)
        )
        return loss

    for _epoch in range(6):
        t0 = time.perf_counter()
        for x, y in ds:
            shapes.add(tuple(x.shape))
            train_step(x, y)
        times.append(round(time.perf_counter() - t0, 2))
print(
    f"TRUTH bucket={BUCKET} fit={FIT} sig={SIG}: step traced {traces[0]} times, {len(shapes)} batch shapes; epoch s {times}",
    file=__import__("sys").stderr,
)
