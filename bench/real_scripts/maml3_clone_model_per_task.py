# Source: https://github.com/hereismari/tensorflow-maml/issues/3 ("How to apply several SGD
# steps within the inner loop?"; the workaround posted there: "make a new copy of meta model
# ... manually set the weights") and the repo's notebook: MAML on sine regression in eager TF2.
# Each outer step samples 10 tasks; for each task a copy of the meta-model is made
# (`clone_model` + `set_weights`, the repo's `copy_model`), one inner SGD step is taken by hand
# on the copy's kernels (an outer tape over an inner tape), and the query loss's gradients
# update the meta-model with Adam. No tf.data, no hook.epoch: 10 tasks x 260 outer steps =
# 2,600 copies.
# RS_FAST=1: no copies: the inner step is a functional forward pass with the adapted weights
# (`fast = [w - a*g]`), the usual fix.
# Truth: outer updates (Adam iterations), copies made, RSS every 50 outer steps, s per 50.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

FAST = os.environ.get("RS_FAST") == "1"
STEPS = int(os.environ.get("RS_STEPS", "260"))
TASKS, K, ALPHA = 10, 10, 0.01
rng = np.random.default_rng(3)
meta = tf.keras.Sequential(
    [
        tf.keras.Input((1,)),
        tf.keras.layers.Dense(40, activation="relu"),
        tf.keras.layers.Dense(40, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
_hook.mark()
opt = tf.keras.optimizers.Adam(1e-3)
copies = [0]


def sample_task():
    amp, phase = rng.uniform(0.1, 5.0), rng.uniform(0, np.pi)
    xs = rng.uniform(-5, 5, (2 * K, 1)).astype(np.float32)
    return xs[:K], amp * np.sin(xs[:K] + phase), xs[K:], amp * np.sin(xs[K:] + phase)


def forward(ws, x):
    h = tf.nn.relu(x @ ws[0] + ws[1])
    h = tf.nn.relu(h @ ws[2] + ws[3])
    return h @ ws[4] + ws[5]


def copy_model(model):
    copies[0] += 1
    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


rss, per50, t0 = [], [], time.perf_counter()
for step in range(STEPS):
    with tf.GradientTape() as outer:
        total = 0.0
        for _t in range(TASKS):
            xs, ys, xq, yq = sample_task()
            with tf.GradientTape() as inner:
                loss = tf.reduce_mean((meta(xs) - ys) ** 2)
            grads = inner.gradient(loss, meta.trainable_variables)
            fast = [w - ALPHA * g for w, g in zip(meta.trainable_variables, grads, strict=True)]
            if not FAST:
                clone = copy_model(meta)  # the repo's copy; its kernels replaced by the adapted ones
                for layer, (k, b) in zip(clone.layers, zip(fast[::2], fast[1::2], strict=True), strict=True):
                    layer.kernel_adapted, layer.bias_adapted = k, b
                fast = [w for layer in clone.layers for w in (layer.kernel_adapted, layer.bias_adapted)]
            total += tf.reduce_mean((forward(fast, xq) - yq) ** 2)
        total /= TASKS
    opt.apply_gradients(
        zip(outer.gradient(total, meta.trainable_variables), meta.trainable_variables, strict=False)
    )
    if step % 50 == 49:
        per50.append(round(time.perf_counter() - t0, 1))
        rss.append(round(_hook._rss_mib()))
        t0 = time.perf_counter()
print(
    f"TRUTH fast={FAST}: outer updates {int(opt.iterations)}, copies {copies[0]}; "
    f"s per 50 outer steps {per50}; RSS {rss} MiB",
    file=sys.stderr,
)
