# Source: https://github.com/tensorflow/tensorflow/issues/42183 ("Adam optimizer - ValueError:
# tf.function-decorated function tried to create variables on non-first call") and
# https://github.com/tensorflow/tensorflow/issues/27120 (liuneng1994: "I tried to create new
# optimizer instance in every training step"): `optim = Adam(...)` inside the `@tf.function` step.
# The workaround users are given for that ValueError is `tf.config.run_functions_eagerly(True)`:
# the error goes away, the step now runs eagerly (no graph at all) and a fresh Adam is made at
# every step (its moments and step count restart each time: every update is Adam's first, a
# sign-like step of size lr). A GradientTape loop, 8 epochs of 40 steps. `RS_FIXED=1`: the
# optimizer made once outside, the step a real `tf.function` (the fix).
# Truth (printed): optimizers made, the last optimizer's iterations, seconds per epoch, losses.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

FIXED = os.environ.get("RS_FIXED") == "1"
if not FIXED:
    tf.config.run_functions_eagerly(True)  # "fixes" the ValueError
rng = np.random.default_rng(1)
x = rng.random((2560, 32), dtype=np.float32)
w = rng.standard_normal((32, 1)).astype("float32")
y = (x @ w).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2560).batch(64)
model = tf.keras.Sequential(
    [tf.keras.Input((32,)), tf.keras.layers.Dense(256, activation="relu"), tf.keras.layers.Dense(1)]
)
made = [0]
fixed_opt = tf.keras.optimizers.Adam(1e-3) if FIXED else None


def new_adam():
    made[0] += 1
    return tf.keras.optimizers.Adam(1e-3)


@tf.function
def train_step(xb, yb):
    optim = fixed_opt if FIXED else new_adam()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
    grads = tape.gradient(loss, model.trainable_variables)
    optim.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    train_step.last = optim
    return loss


_hook.mark()
losses, secs = [], []
for _epoch in range(8):
    t0, total, n = time.perf_counter(), 0.0, 0
    for xb, yb in ds:
        total += float(train_step(xb, yb))
        n += 1
    secs.append(round(time.perf_counter() - t0, 2))
    losses.append(round(total / n, 4))
print(
    f"TRUTH {'fixed' if FIXED else 'eager, Adam per step'}: optimizers made {made[0] if not FIXED else 1}, "
    f"last one's iterations {int(train_step.last.iterations.numpy())}; epochs {secs} s; losses {losses}"
)
