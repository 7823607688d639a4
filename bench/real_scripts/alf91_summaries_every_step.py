# Source: https://github.com/HorizonRobotics/alf/issues/91 ("summarize_grads_and_vars and
# debug_summaries are very slow": histograms of every gradient and variable at every update)
# with tensorflow/models#9660 ("Way to huge event files": `tf.summary.image` of the input
# batch at every step, `num_steps_per_iteration = 1`) and tensorflow#31242 ("events.out.tfevents
# file is getting too large as training continues"). A GradientTape loop whose `@tf.function`
# step writes, through a default `tf.summary.create_file_writer` and the optimizer's
# iterations as the step, a histogram of each variable and gradient and 3 of the input images
# every step. A small CNN on 64x64x3 noise images, 1,600 rows, batch 16 (100 steps), 16 epochs.
# RS_EVERY=50: the same summaries under `tf.summary.record_if(step % 50 == 0)`.
# Truth: the events file's size per epoch, epoch times, RSS.
import os
import sys
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

EVERY = int(os.environ.get("RS_EVERY", "1"))
rng = np.random.default_rng(91)
x = rng.random((1600, 64, 64, 3), dtype=np.float32)
y = rng.integers(0, 10, 1600)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1600).batch(16)
model = tf.keras.Sequential(
    [
        tf.keras.Input((64, 64, 3)),
        tf.keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        tf.keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(10),
    ]
)
_hook.mark()
opt = tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
logdir = tempfile.mkdtemp(prefix="alf91_logs_")
writer = tf.summary.create_file_writer(logdir)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    step = opt.iterations
    with writer.as_default(step=step), tf.summary.record_if(step % EVERY == 0):
        tf.summary.scalar("loss", loss)
        tf.summary.image("train_input_images", xb, max_outputs=3)
        for v, g in zip(model.trainable_variables, grads, strict=True):
            name = v.path.replace("/", "_")
            tf.summary.histogram(name, v)
            tf.summary.histogram(name + "_gradient", g)
    return loss


def logsize():
    return sum(os.path.getsize(os.path.join(logdir, f)) for f in os.listdir(logdir)) / 2**20


sizes, times, rss = [], [], []
for _epoch in range(16):
    t0 = time.perf_counter()
    for xb, yb in ds:
        train_step(xb, yb)
    writer.flush()
    times.append(round(time.perf_counter() - t0, 2))
    sizes.append(round(logsize(), 1))
    rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH every={EVERY}: log dir {logdir} MiB per epoch {sizes}; epoch s {times}; RSS {rss} MiB",
    file=sys.stderr,
)
