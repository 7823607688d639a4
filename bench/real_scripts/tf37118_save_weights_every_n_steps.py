# Source: https://github.com/tensorflow/tensorflow/issues/37118 ("How to save model by training
# steps": "save a model every 100,000 steps, and save all these models in disk, not rewrite the
# model files when saving a new one"), tabularis-ai/be_great#2 ("the weight is saved every 500
# steps which quickly fill up hard disk space") and brainglobe/cellfinder#68. A GradientTape loop
# (`@tf.function` step, an MLP of 1.05 M parameters: a 4 MiB `.weights.h5`) that calls
# `model.save_weights(f"ckpt/step_{step:06d}.weights.h5")` every 25 steps, nothing deleted:
# 4 new files an epoch, 12 epochs of 100 steps (48 files, ~190 MiB by the end; a 100 M-parameter
# model would write 1.5 GB an epoch).
# RS_FIXED=1: keep the newest three (the older files removed after each save).
# Truth: files and MiB in the directory after each epoch (printed plain).
import os
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

FIXED = os.environ.get("RS_FIXED") == "1"
ckpt_dir = os.path.join(tempfile.mkdtemp(prefix="rs_37118_"), "ckpt")
os.makedirs(ckpt_dir)
rng = np.random.default_rng(37118)
x = rng.random((6400, 784), dtype=np.float32)
y = rng.integers(0, 10, 6400)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(6400).batch(64)
model = tf.keras.Sequential(
    [
        tf.keras.Input((784,)),
        tf.keras.layers.Dense(1024, activation="relu"),
        tf.keras.layers.Dense(256, activation="relu"),
        tf.keras.layers.Dense(10),
    ]
)
opt = tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
_hook.mark()


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    return loss


def du():
    files = os.listdir(ckpt_dir)
    return len(files), round(sum(os.path.getsize(os.path.join(ckpt_dir, f)) for f in files) / 2**20, 1)


step, sizes = 0, []
for _ in range(12):
    for xb, yb in ds:
        train_step(xb, yb)
        step += 1
        if step % 25 == 0:
            model.save_weights(os.path.join(ckpt_dir, f"step_{step:06d}.weights.h5"))
            if FIXED:
                for old in sorted(os.listdir(ckpt_dir))[:-3]:
                    os.remove(os.path.join(ckpt_dir, old))
    sizes.append(du())
print(f"TRUTH fixed={FIXED}: (files, MiB) after each epoch {sizes}", file=sys.stderr)
