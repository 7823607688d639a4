# Source: https://github.com/tensorflow/tensorflow/issues/7946 ("(Saver.max_to_keep) should keep
# every checkpoint by default"; the answer: "we've chosen the default max_to_keep=5 to avoid
# filling up your disk space. It would be unfortunate if you left a job running for a while,
# only to discover that all of your disk had been used up by checkpoints!"). The TF2 form of
# the request: a GradientTape loop (`@tf.function` step) that saves
# `tf.train.CheckpointManager(ckpt, directory, max_to_keep=None)` at every epoch's end, with the
# optimizer in the checkpoint: ~12 MiB a save (1M weights + Adam's two moments).
# RS_KEEP=3: the healthy twin, `max_to_keep=3` (the directory stays at three checkpoints).
# RS_EPOCHS=N: N epochs (default 24).
# Truth: the directory's size after each epoch (printed by the plain run): +12 MiB an epoch,
# forever, with max_to_keep=None; flat at 3 checkpoints with RS_KEEP=3.
import os
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

keep = int(os.environ["RS_KEEP"]) if os.environ.get("RS_KEEP") else None
rng = np.random.default_rng(3)
x = rng.random((2048, 1000), dtype=np.float32)
y = rng.integers(0, 10, 2048)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2048).batch(64)
model = tf.keras.Sequential(
    [tf.keras.Input((1000,)), tf.keras.layers.Dense(1000, activation="relu"), tf.keras.layers.Dense(10)]
)
optimizer = tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
ckpt = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), optimizer=optimizer, model=model)
directory = tempfile.mkdtemp(prefix="rs_7946_")
manager = tf.train.CheckpointManager(ckpt, directory, max_to_keep=keep)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    ckpt.step.assign_add(1)
    return loss


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**20


_hook.mark()
sizes, rss = [], []
for _epoch in range(int(os.environ.get("RS_EPOCHS", "24"))):
    for xb, yb in ds:
        train_step(xb, yb)
    manager.save()
    sizes.append(round(du(directory)))
    rss.append(round(_hook._rss_mib()))
print(f"TRUTH checkpoint dir MiB after each epoch {sizes}; max_to_keep={keep}; RSS MiB {rss}")
