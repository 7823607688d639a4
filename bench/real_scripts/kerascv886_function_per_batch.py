# Source: https://github.com/keras-team/keras-cv/issues/886 ("Query on object detection
# (faster-rcnn)": "WARNING:tensorflow:5 out of the last 9 calls to <function train_step> triggered
# tf.function retracing ... could be due to (1) creating @tf.function repeatedly in a loop"), and
# TensorFlow's own warning text, cause (1). The shape users write when they "compile the step for
# speed" inside the loop: `tf.function(train_step)(x, y)` or a `@tf.function` closure defined in
# the batch loop, so every batch gets a new function and a new trace (a graph of the model's
# forward and backward pass each time). A small CNN on 32x32x3 images, batch 64, 12 epochs of 16
# batches (192 traces in all).
# RS_ONCE=1: the twin, `train_step = tf.function(step)` once before the loop.
# Truth: traces, seconds and RSS per epoch (printed by the plain run).
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

ONCE = os.environ.get("RS_ONCE") == "1"
rng = np.random.default_rng(886)
x = rng.random((1024, 32, 32, 3), dtype=np.float32)
y = rng.integers(0, 10, 1024)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1024).batch(64)
model = keras.Sequential(
    [
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ]
)
optimizer = keras.optimizers.Adam(1e-3)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
traces = [0]


def step(xb, yb):
    traces[0] += 1
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    optimizer.apply_gradients(
        zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=False)
    )
    return loss


once = tf.function(step)
_hook.mark()
per_epoch, secs, rss = [], [], []
for _epoch in range(12):
    t0, before = time.perf_counter(), traces[0]
    for xb, yb in ds:
        train_step = once if ONCE else tf.function(step)
        train_step(xb, yb)
    per_epoch.append(traces[0] - before)
    secs.append(round(time.perf_counter() - t0, 2))
    rss.append(round(_hook._rss_mib()))
print(f"TRUTH once={ONCE}; traces per epoch {per_epoch}; epoch s {secs}; RSS MiB {rss}")
