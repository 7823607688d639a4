# Source: Keras 3's guide "Writing a training loop from scratch in JAX"
# (keras.io/guides/writing_a_custom_training_loop_in_jax/) and keras-team/keras#18450-like
# questions about it: KERAS_BACKEND=jax, a `jax.jit` train step built on
# `model.stateless_call` and `optimizer.stateless_apply`, the state tuple threaded through by
# hand, batches from a tf.data pipeline (`.as_numpy_iterator()`). An MLP on 784-d rows,
# 4,096 rows, batch 64 (64 steps an epoch), 12 epochs; the state assigned back at the end.
# RS_VARLEN=1: the last batch of each epoch is partial (4,000 rows: 62 full batches and one of
# 32) AND every 8th batch is cut to a random size 16-63 (a filter upstream), so the step
# compiles for each new batch size it meets.
# RS_KEEP=1: each step's first kernel (784x256 floats, 0.8 MB) kept in a list "for a plot":
# +51 MiB an epoch.
# Truth: optimizer iterations, compiles of the step, epoch times, RSS.
import os

os.environ.setdefault("KERAS_BACKEND", "jax")
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import jax
import keras
import numpy as np
import tensorflow as tf

VARLEN = os.environ.get("RS_VARLEN") == "1"
KEEP = os.environ.get("RS_KEEP") == "1"
rng = np.random.default_rng(18450)
N = 4000 if VARLEN else 4096
x = rng.random((N, 784), dtype=np.float32)
y = rng.integers(0, 10, N)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(N).batch(64)
if VARLEN:
    ds = ds.enumerate().map(
        lambda i, b: (
            b[0][: tf.where(i % 8 == 7, 16 + (i * 7) % 48, 64)],
            b[1][: tf.where(i % 8 == 7, 16 + (i * 7) % 48, 64)],
        )
    )
model = keras.Sequential(
    [keras.Input((784,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)]
)
_hook.mark()
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
optimizer = keras.optimizers.Adam(1e-3)
optimizer.build(model.trainable_variables)
compiles = [0]


def compute_loss_and_updates(trainable, non_trainable, xb, yb):
    y_pred, non_trainable = model.stateless_call(trainable, non_trainable, xb, training=True)
    return loss_fn(yb, y_pred), non_trainable


grad_fn = jax.value_and_grad(compute_loss_and_updates, has_aux=True)


@jax.jit
def train_step(state, data):
    compiles[0] += 1
    trainable, non_trainable, opt_vars = state
    xb, yb = data
    (loss, non_trainable), grads = grad_fn(trainable, non_trainable, xb, yb)
    trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
    return loss, (trainable, non_trainable, opt_vars)


state = (
    [v.value for v in model.trainable_variables],
    [v.value for v in model.non_trainable_variables],
    [v.value for v in optimizer.variables],
)
times, rss, kept = [], [], []
for _epoch in range(12):
    t0 = time.perf_counter()
    for data in ds.as_numpy_iterator():
        loss, state = train_step(state, data)
        if KEEP:
            kept.append(state[0][0])
    jax.block_until_ready(loss)
    times.append(round(time.perf_counter() - t0, 2))
    rss.append(round(_hook._rss_mib()))
trainable, non_trainable, opt_vars = state
for v, val in zip(optimizer.variables, opt_vars, strict=True):
    v.assign(val)
print(
    f"TRUTH varlen={VARLEN}: iterations {int(optimizer.iterations)}, step compiles {compiles[0]}; "
    f"epoch s {times}; RSS {rss} MiB",
    file=sys.stderr,
)
