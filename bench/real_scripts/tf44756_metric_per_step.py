# Source: https://github.com/tensorflow/tensorflow/issues/44756 ("Memory leak with keras metrics":
# a `tf.keras.metrics.Mean` is not garbage collected when dropped, reference cycles) and the
# custom-loop shape users post with it (tf#35044, StackOverflow "memory grows in my GradientTape
# loop"): the metric objects are created *inside* the loop, a new `Mean()` and
# `SparseCategoricalAccuracy()` for every batch (to log per-batch values), updated once and
# dropped. A tf.function train step (784-256-10 MLP), 64 batches of 64 an epoch, 12 epochs.
# RS_EPOCHS=N: N epochs (12).
# RS_EPOCH=1: the metrics created once per epoch (the usual, healthy form: reset by re-creating).
# RS_ONCE=1: created once, `reset_state()` each epoch (the guide's form).
# Truth: metric objects created, RSS after each epoch, epoch times.
import gc
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

MODE = (
    "epoch" if os.environ.get("RS_EPOCH") == "1" else "once" if os.environ.get("RS_ONCE") == "1" else "step"
)
rng = np.random.default_rng(44756)
x = rng.random((4096, 784), dtype=np.float32)
y = rng.integers(0, 10, 4096)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(4096).batch(64)
model = tf.keras.Sequential(
    [tf.keras.Input((784,)), tf.keras.layers.Dense(256, activation="relu"), tf.keras.layers.Dense(10)]
)
_hook.mark()
opt = tf.keras.optimizers.Adam()
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        logits = model(xb, training=True)
        loss = loss_fn(yb, logits)
    opt.apply_gradients(
        zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=False)
    )
    return loss, logits


created, rss, times = 0, [], []
if MODE == "once":
    mean, acc = tf.keras.metrics.Mean(), tf.keras.metrics.SparseCategoricalAccuracy()
    created = 2
for _epoch in range(int(os.environ.get("RS_EPOCHS", "12"))):
    t0 = time.perf_counter()
    if MODE == "epoch":
        mean, acc = tf.keras.metrics.Mean(), tf.keras.metrics.SparseCategoricalAccuracy()
        created += 2
    elif MODE == "once":
        mean.reset_state()
        acc.reset_state()
    for xb, yb in ds:
        loss, logits = train_step(xb, yb)
        if MODE == "step":
            mean, acc = tf.keras.metrics.Mean(), tf.keras.metrics.SparseCategoricalAccuracy()
            created += 2
        mean.update_state(loss)
        acc.update_state(yb, logits)
    times.append(round(time.perf_counter() - t0, 2))
    rss.append(round(_hook._rss_mib()))
gc.collect()
print(
    f"TRUTH mode={MODE}: {created} metric objects created; RSS MiB after each epoch {rss} "
    f"(after gc {round(_hook._rss_mib())}); epoch s {times}",
    file=sys.stderr,
)
