# Source: https://github.com/tensorflow/tensorflow/issues/30984 ("[tf2.0] tf.function and
# dataset perf issue": the user's fast version puts the whole epoch inside one `@tf.function`,
# `for x, y in dataset:` iterated in graph mode; "Given a standard dataset, how do I ensure
# that I keep the speed up and loop over it?") and tensorflow#29911 (the maintainers' advice:
# "You could also consider passing the entire dataset into the tf.function"). A GradientTape
# loop whose `train_epoch(dataset)` is one `@tf.function` that iterates the dataset, called once
# per epoch from Python with the same `tf.data` pipeline (shuffled each pass), 16 epochs of 125
# steps; the loss accumulates in a `tf.keras.metrics.Mean` read after each call. A healthy
# custom loop: one trace (the dataset's type spec is the same every epoch), flat memory.
# RS_NEWDS=1: a new `from_tensor_slices(...).shuffle().batch()` made every epoch and passed in
# (same element spec: still one trace).
# RS_KEEP=1: after each epoch the hidden layer's activations on the whole training set are kept
# in a list "for plots" (8,000 x 256 float32: 7.8 MiB an epoch, never freed).
# Truth: traces of `train_epoch`, updates, loss per epoch, RSS (printed plain).
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

NEWDS = os.environ.get("RS_NEWDS") == "1"
KEEP = os.environ.get("RS_KEEP") == "1"
rng = np.random.default_rng(30984)
x = rng.standard_normal((8000, 64)).astype(np.float32)
w = rng.standard_normal((64, 1)).astype(np.float32)
y = (x @ w + 0.1 * rng.standard_normal((8000, 1))).astype(np.float32)


def make_ds():
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(8000).batch(64)


model = tf.keras.Sequential(
    [tf.keras.Input((64,)), tf.keras.layers.Dense(256, activation="relu"), tf.keras.layers.Dense(1)]
)
opt = tf.keras.optimizers.Adam(1e-3)
train_loss = tf.keras.metrics.Mean()
_hook.mark()
traces = 0


@tf.function
def train_epoch(dataset):
    global traces
    traces += 1
    for xb, yb in dataset:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))
        train_loss.update_state(loss)


ds = make_ds()
losses, times, rss, kept = [], [], [], []
for _ in range(16):
    train_loss.reset_state()
    t0 = time.perf_counter()
    train_epoch(make_ds() if NEWDS else ds)
    times.append(round(time.perf_counter() - t0, 2))
    losses.append(round(float(train_loss.result()), 4))
    if KEEP:
        kept.append(model.layers[0](x).numpy())
    rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH newds={NEWDS} keep={KEEP}: {traces} trace(s), {int(opt.iterations)} updates (125 an epoch); loss {losses}; "
    f"epoch s {times}; RSS {rss[0]} -> {rss[-1]} MiB",
    file=sys.stderr,
)
