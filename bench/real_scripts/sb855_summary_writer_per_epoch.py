# Source: https://github.com/hill-a/stable-baselines/issues/855 ("Should `TensorboardWriter` close
# its `tf.summary.FileWriter`?": each `learn()` made a new FileWriter that was flushed but never
# closed, "a 'too many files are opened by this process' error in one of my runs", and "a long and
# growing list of files like events.out.tfevents.1589433242..." in one log directory), and
# https://github.com/tensorflow/tensorflow/issues/20606 ("events.out.tfevents files do not get
# closed": ResourceExhausted, too many open files). The TF2 form: a GradientTape loop that calls
# `tf.summary.create_file_writer(logdir)` at the start of every epoch (to "log this epoch") and
# writes the epoch's scalars and a weight histogram with it, never closing it: a new events file,
# an open file and a writer resource each epoch. An MLP, 40 epochs of 16 steps.
# RS_ONCE=1: the twin, one writer made before the loop (one events file).
# Truth: events files, open file descriptors and the log dir's size after each epoch (plain run).
import os
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

ONCE = os.environ.get("RS_ONCE") == "1"
logdir = tempfile.mkdtemp(prefix="rs_sb855_")
rng = np.random.default_rng(855)
x, y = rng.random((1024, 64), dtype=np.float32), rng.integers(0, 4, 1024)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
model = tf.keras.Sequential(
    [tf.keras.Input((64,)), tf.keras.layers.Dense(256, activation="relu"), tf.keras.layers.Dense(4)]
)
optimizer = tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    optimizer.apply_gradients(
        zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=False)
    )
    return loss


def fds():
    return len(os.listdir("/proc/self/fd"))


writer = tf.summary.create_file_writer(logdir) if ONCE else None
_hook.mark()
files, opened, sizes = [], [], []
for epoch in range(40):
    if not ONCE:
        writer = tf.summary.create_file_writer(logdir)  # "a writer for this epoch"
    losses = [float(train_step(xb, yb)) for xb, yb in ds]
    with writer.as_default():
        tf.summary.scalar("loss", np.mean(losses), step=epoch)
        tf.summary.histogram("dense_kernel", model.layers[0].kernel, step=epoch)
    writer.flush()
    files.append(len(os.listdir(logdir)))
    opened.append(fds())
    sizes.append(round(sum(os.path.getsize(os.path.join(logdir, f)) for f in os.listdir(logdir)) / 1024))
    time.sleep(0.05)
print(
    f"TRUTH once={ONCE}; events files {files[::5]}+{files[-1]}; open fds {opened[::5]}+{opened[-1]}; log KiB {sizes[::5]}+{sizes[-1]}"
)
