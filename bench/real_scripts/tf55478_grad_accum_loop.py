# Source: https://github.com/tensorflow/tensorflow/issues/55478 ("How can we use gradients
# accumulation in tf.keras by defining the custom training step?") and tf#47578, with the
# StackOverflow answer they point to (how-to-accumulate-gradients-in-tensorflow-2-0): a custom
# GradientTape loop that computes gradients on each micro-batch, sums them into a list of
# tf.Variables, and applies them once every ACCUM=4 micro-batches, then zeroes the sums.
# A 784-256-256-10 MLP, micro-batch 32, 4,096 rows: 128 micro-batches and 32 optimizer updates an
# epoch, 10 epochs.
# RS_PYINT=1: the form users write first: `train_step(x, y, accum_index)` with the Python int
# 0..3 (and `apply = accum_index == ACCUM - 1`) passed into the tf.function: 4 traces, then none
# (bounded: no storm).
# Truth: optimizer iterations per epoch (32), micro-batches (128), traces, epoch times.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

PYINT = os.environ.get("RS_PYINT") == "1"
ACCUM = 4
rng = np.random.default_rng(55478)
x = rng.random((4096, 784), dtype=np.float32)
y = rng.integers(0, 10, 4096)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(4096).batch(32)
model = tf.keras.Sequential(
    [
        tf.keras.Input((784,)),
        tf.keras.layers.Dense(256, activation="relu"),
        tf.keras.layers.Dense(256, activation="relu"),
        tf.keras.layers.Dense(10),
    ]
)
_hook.mark()
opt = tf.keras.optimizers.Adam(1e-3)
opt.build(model.trainable_variables)  # else its first apply (a later trace) creates variables
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
acc = [tf.Variable(tf.zeros_like(v), trainable=False) for v in model.trainable_variables]
traces = [0]


@tf.function
def accumulate(xb, yb):
    traces[0] += 1
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True)) / ACCUM
    for a, g in zip(acc, tape.gradient(loss, model.trainable_variables), strict=True):
        a.assign_add(g)
    return loss


@tf.function
def apply_accumulated():
    traces[0] += 1
    opt.apply_gradients(zip(acc, model.trainable_variables, strict=False))
    for a in acc:
        a.assign(tf.zeros_like(a))


@tf.function
def train_step(xb, yb, accum_index):
    traces[0] += 1
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True)) / ACCUM
    for a, g in zip(acc, tape.gradient(loss, model.trainable_variables), strict=True):
        a.assign_add(g)
    if accum_index == ACCUM - 1:  # a Python int: one trace per value
        opt.apply_gradients(zip(acc, model.trainable_variables, strict=False))
        for a in acc:
            a.assign(tf.zeros_like(a))
    return loss


per_epoch, times, losses = [], [], []
for _epoch in range(10):
    t0, it0, total = time.perf_counter(), int(opt.iterations.numpy()), 0.0
    for i, (xb, yb) in enumerate(ds):
        if PYINT:
            total += float(train_step(xb, yb, i % ACCUM))
        else:
            total += float(accumulate(xb, yb))
            if i % ACCUM == ACCUM - 1:
                apply_accumulated()
    per_epoch.append(int(opt.iterations.numpy()) - it0)
    times.append(round(time.perf_counter() - t0, 2))
    losses.append(round(total / 32, 3))
print(
    f"TRUTH pyint={PYINT}: optimizer updates per epoch {per_epoch}, micro-batches 128/epoch, "
    f"traces {traces[0]}; epoch s {times}; loss {losses}",
    file=sys.stderr,
)
