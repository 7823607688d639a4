# Source: https://github.com/yerkojahve/Meta-Pseudo-label/issues/1 (DLPerf's report on
# snlds/examples/lorenz_attractor_trainer.py, the SNLDS example of google-research: "Python type
# arguments `learning_rate`, `temperature` and `cross_entrophy_coef` are passed to tf.function
# decorated function `train_step` instead of tensors. As there is a while loop, every time the
# value changes, a new graph will be generated"). The trainer's shape: a `while step < N` loop
# that computes annealed Python floats every step (learning rate decayed exponentially to a floor,
# temperature annealed to a floor, the cross-entropy coefficient annealed to 0) and passes them
# to `@tf.function train_step(batch, learning_rate, temperature, xent_coef)`. Each new float is
# a new trace until every schedule reaches its floor (here after step ~110 of 600: a bounded
# storm that then stops), each trace holding a graph. A small GRU-free MLP stands in for the
# switching dynamical system; 20 passes of 30 batches.
# RS_TENSOR=1: the fix, the three values passed as `tf.constant(...)` (one trace).
# RS_FLOOR=0: no floors (retraces every step to the end).
# Truth: traces per epoch, RSS and seconds per epoch (printed by the plain run).
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

TENSOR = os.environ.get("RS_TENSOR") == "1"
FLOOR = os.environ.get("RS_FLOOR", "1") == "1"
rng = np.random.default_rng(7)
x = rng.standard_normal((30 * 64, 3)).astype(np.float32)
y = np.roll(x, -1, axis=0) + 0.01 * rng.standard_normal(x.shape).astype(np.float32)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
model = tf.keras.Sequential(
    [
        tf.keras.Input((3,)),
        tf.keras.layers.Dense(128, activation="tanh"),
        tf.keras.layers.Dense(128, activation="tanh"),
        tf.keras.layers.Dense(3 * 4),
    ]
)
optimizer = tf.keras.optimizers.Adam(1e-3)
traces = [0]


@tf.function
def train_step(xb, yb, learning_rate, temperature, xent_coef):
    traces[0] += 1
    optimizer.learning_rate.assign(learning_rate)
    with tf.GradientTape() as tape:
        out = tf.reshape(model(xb, training=True), (-1, 4, 3))
        weights = tf.nn.softmax(tf.reduce_sum(out, -1) / temperature)
        pred = tf.reduce_sum(weights[..., None] * out, 1)
        entropy = -tf.reduce_sum(weights * tf.math.log(weights + 1e-9), -1)
        loss = tf.reduce_mean(tf.square(pred - yb)) - xent_coef * tf.reduce_mean(entropy)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    return loss


def schedules(step):
    lr = 1e-3 * 0.97**step
    temp = 10.0 * 0.96**step
    xent = 1.0 - step / 100.0
    if FLOOR:
        lr, temp, xent = max(lr, 1e-4), max(temp, 1.0), max(xent, 0.0)
    return float(lr), float(temp), float(xent)


_hook.mark()
step, per_epoch, rss, secs = 0, [], [], []
for _epoch in range(20):
    t0, before = time.perf_counter(), traces[0]
    for xb, yb in ds:
        lr, temp, xent = schedules(step)
        if TENSOR:
            lr, temp, xent = tf.constant(lr), tf.constant(temp), tf.constant(xent)
        train_step(xb, yb, lr, temp, xent)
        step += 1
    per_epoch.append(traces[0] - before)
    rss.append(round(_hook._rss_mib()))
    secs.append(round(time.perf_counter() - t0, 2))
print(f"TRUTH tensor={TENSOR} floor={FLOOR}; traces per epoch {per_epoch}; RSS MiB {rss}; epoch s {secs}")
