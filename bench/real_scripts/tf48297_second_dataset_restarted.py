# Source: https://github.com/tensorflow/tensorflow/issues/48297 ("Add option to reset a
# tf.data.Iterator": `for element in datasetA:` each epoch, with `iterB.get_next_as_optional()`
# on a second, smaller dataset whose iterator is restarted by hand, `iterB = iter(datasetB)`,
# when it runs out) and huggingface/sentence-transformers#1415 (multi-task: several loaders of
# different sizes). A semi-supervised custom loop: each step takes a labelled batch from A (80
# batches an epoch) and an unlabelled batch from B (24 batches, restarted when exhausted), one
# `@tf.function` step with a supervised loss on A and a consistency loss on B. 10 epochs of A.
# RS_ZIP=1: B repeated inside the pipeline (`tf.data.Dataset.zip((A, B.repeat()))`): one dataset.
# Truth: epochs of A (10), steps per epoch (80), restarts of B (~33).
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

ZIP = os.environ.get("RS_ZIP") == "1"
rng = np.random.default_rng(48297)
xa, ya = rng.random((2560, 64), dtype=np.float32), rng.integers(0, 5, 2560)
xb = rng.random((768, 64), dtype=np.float32)
ds_a = tf.data.Dataset.from_tensor_slices((xa, ya)).shuffle(2560).batch(32)
ds_b = tf.data.Dataset.from_tensor_slices(xb).shuffle(768).batch(32)
model = tf.keras.Sequential(
    [tf.keras.Input((64,)), tf.keras.layers.Dense(256, activation="relu"), tf.keras.layers.Dense(5)]
)
_hook.mark()
opt = tf.keras.optimizers.Adam(1e-3)
ce = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step(x_l, y_l, x_u):
    with tf.GradientTape() as tape:
        sup = ce(y_l, model(x_l, training=True))
        p1 = tf.nn.softmax(model(x_u + tf.random.normal(tf.shape(x_u), stddev=0.05), training=True))
        p2 = tf.nn.softmax(model(x_u, training=True))
        loss = sup + tf.reduce_mean((p1 - tf.stop_gradient(p2)) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    return loss


restarts, per_epoch, times = 0, [], []
it_b = iter(ds_b)
zipped = tf.data.Dataset.zip((ds_a, ds_b.repeat()))
for _epoch in range(10):
    t0, it0 = time.perf_counter(), int(opt.iterations)
    if ZIP:
        for (x_l, y_l), x_u in zipped:
            train_step(x_l, y_l, x_u)
    else:
        for x_l, y_l in ds_a:
            x_u = it_b.get_next_as_optional()
            if not x_u.has_value():
                it_b = iter(ds_b)
                restarts += 1
                x_u = it_b.get_next_as_optional()
            train_step(x_l, y_l, x_u.get_value())
    per_epoch.append(int(opt.iterations) - it0)
    times.append(round(time.perf_counter() - t0, 2))
print(
    f"TRUTH zip={ZIP}: steps per epoch {per_epoch}, restarts of B {restarts}; epoch s {times}",
    file=sys.stderr,
)
