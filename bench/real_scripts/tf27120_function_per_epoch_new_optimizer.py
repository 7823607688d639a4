# Source: https://github.com/tensorflow/tensorflow/issues/27120 ("tf.function-decorated function
# tried to create variables on non-first call"; tensorflow#34983 the same): a custom loop whose
# optimizer's slot variables were created inside the `tf.function` on a later call. The
# workaround users posted and kept: make the optimizer and the `tf.function` anew each epoch
# (`train_step = tf.function(make_step(tf.keras.optimizers.Adam(lr)))` at the top of the epoch),
# so every first call may create variables. 20 epochs of 50 steps, an MLP on 784 features.
# RS_ONCE=1: the healthy twin, one optimizer and one `tf.function` before the loop.
# Truth (printed by the plain run): a new trace every epoch (each ~0.3 s, a sizeable share of
# a 0.3-0.5 s epoch), and Adam restarting from step 0 every epoch (its moments and bias
# correction lost: the first steps of each epoch take full-size updates, the loss jumps at each
# epoch's start). Memory: the old functions and optimizers are freed (or not: measured).
import os

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

ONCE = os.environ.get("RS_ONCE") == "1"
rng = np.random.default_rng(0)
x = rng.random((3200, 784), dtype=np.float32)
w = rng.standard_normal((784, 10)).astype("float32")
y = np.argmax(x @ w + rng.standard_normal((3200, 10)).astype("float32"), axis=1)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(3200).batch(64)
model = tf.keras.Sequential(
    [tf.keras.Input((784,)), tf.keras.layers.Dense(256, activation="relu"), tf.keras.layers.Dense(10)]
)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
traces = [0]


def make_step(optimizer):
    def train_step(xb, yb):
        traces[0] += 1
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return train_step


if ONCE:
    train_step = tf.function(make_step(tf.keras.optimizers.Adam(1e-3)))
_hook.mark()
first_losses, rss = [], []
for _epoch in range(20):
    if not ONCE:
        train_step = tf.function(make_step(tf.keras.optimizers.Adam(1e-3)))
    losses = [float(train_step(xb, yb)) for xb, yb in ds]
    first_losses.append(round(float(np.mean(losses[:5])) - float(np.mean(losses[-5:])), 3))
    rss.append(round(_hook._rss_mib()))
print(f"TRUTH {traces[0]} traces; loss(first 5 steps) - loss(last 5) per epoch {first_losses}; RSS {rss} MiB")
