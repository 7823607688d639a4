# Source: users' eager custom loops as posted in "GradientTape training much slower than fit"
# threads (e.g. https://github.com/tensorflow/tensorflow/issues/30596 "tf.GradientTape ... 10x
# slower than keras fit"), written from TF's "writing a training loop from scratch" guide
# without its `@tf.function`: a GAN-like two-loss step with one `tf.GradientTape(persistent=True)`
# for both gradients (`del tape` forgotten: the tape lives until the next step rebinds it), and
# a `tf.summary.create_file_writer` logging the losses and a histogram of the logits every step.
# 10 epochs of 60 steps. RS_FUNCTION=1: the same step under `@tf.function` (the healthy twin).
# RS_KEEP=1: each step's tape kept in a list (`tapes.append(tape)`, "to inspect later"): every
# tape holds its step's activations (~1.6 MiB), a real leak.
# Truth: eager is slow (~3x the tf.function step here) but flat in memory; the summary dir grows
# by ~60 KiB an epoch; RS_KEEP=1 grows RSS ~100 MiB an epoch (printed by the plain run).
import os
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

FUNCTION = os.environ.get("RS_FUNCTION") == "1"
KEEP = os.environ.get("RS_KEEP") == "1"
rng = np.random.default_rng(0)
x = rng.random((3840, 128), dtype=np.float32)
y = rng.integers(0, 10, 3840)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(3840).batch(64)
body = tf.keras.Sequential([tf.keras.Input((128,)), tf.keras.layers.Dense(256, activation="relu")])
head = tf.keras.layers.Dense(10)
aux = tf.keras.layers.Dense(1)
head.build((None, 256))
aux.build((None, 256))
opt_main, opt_aux = tf.keras.optimizers.Adam(1e-3), tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
writer = tf.summary.create_file_writer(tempfile.mkdtemp(prefix="rs_eager_logs_"))
tapes = []


def train_step(xb, yb):
    with tf.GradientTape(persistent=True) as tape:
        h = body(xb, training=True)
        logits = head(h)
        main_loss = loss_fn(yb, logits)
        aux_loss = tf.reduce_mean(tf.square(aux(h) - tf.cast(yb[:, None], tf.float32)))
    main_vars = body.trainable_variables + head.trainable_variables
    opt_main.apply_gradients(zip(tape.gradient(main_loss, main_vars), main_vars, strict=True))
    opt_aux.apply_gradients(
        zip(tape.gradient(aux_loss, aux.trainable_variables), aux.trainable_variables, strict=True)
    )
    if KEEP:
        tapes.append(tape)
    return main_loss, aux_loss, logits


if FUNCTION:
    train_step = tf.function(train_step)
_hook.mark()
secs, rss = [], []
step = 0
for _epoch in range(10):
    t = time.perf_counter()
    for xb, yb in ds:
        main_loss, aux_loss, logits = train_step(xb, yb)
        with writer.as_default(step=step):
            tf.summary.scalar("main_loss", main_loss)
            tf.summary.scalar("aux_loss", aux_loss)
            tf.summary.histogram("logits", logits)
        step += 1
    writer.flush()
    secs.append(round(time.perf_counter() - t, 2))
    rss.append(round(_hook._rss_mib()))
print(f"TRUTH epoch seconds {secs}; RSS MiB {rss}")
