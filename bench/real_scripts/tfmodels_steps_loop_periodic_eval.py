# Source: tensorflow/models' step-based custom loops (orbit / model_lib_v2.py, cf.
# tensorflow/models#9660: `num_steps_per_iteration`, evaluation and checkpoints every N steps):
# training runs over `train_ds.repeat()` for a number of *steps* (no epochs in the script), an
# evaluation pass over a validation set every 250 steps (a `@tf.function` eval step, no
# updates), and a `tf.train.CheckpointManager(max_to_keep=3)` save every 500 steps. An MLP on
# 256-d rows, batch 64, 3,000 steps.
# RS_KEEP=1: each evaluation keeps its full logits for "later analysis" (4,096 x 1,000 floats,
# 16 MB an evaluation: +64 MiB per 1,000 steps).
# Truth: steps, evaluations, saves, checkpoint files left, RSS every 500 steps, s per 500 steps.
import os
import sys
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

KEEP = os.environ.get("RS_KEEP") == "1"
STEPS = int(os.environ.get("RS_STEPS", "3000"))
rng = np.random.default_rng(9660)
x, y = rng.random((8192, 256), dtype=np.float32), rng.integers(0, 1000, 8192)
xv, yv = rng.random((4096, 256), dtype=np.float32), rng.integers(0, 1000, 4096)
train_ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(8192).repeat().batch(64).prefetch(2)
val_ds = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(256)
model = tf.keras.Sequential(
    [tf.keras.Input((256,)), tf.keras.layers.Dense(512, activation="relu"), tf.keras.layers.Dense(1000)]
)
_hook.mark()
opt = tf.keras.optimizers.Adam(1e-3)
ce = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
ckpt_dir = tempfile.mkdtemp(prefix="tfmodels_ckpt_")
manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=opt), ckpt_dir, max_to_keep=3)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = ce(yb, model(xb, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    return loss


@tf.function
def eval_step(xb):
    return model(xb, training=False)


kept, evals, saves, rss, per500 = [], 0, 0, [], []
it, t0 = iter(train_ds), time.perf_counter()
for step in range(1, STEPS + 1):
    xb, yb = next(it)
    train_step(xb, yb)
    if step % 250 == 0:
        logits = [eval_step(xb) for xb, _ in val_ds]
        evals += 1
        if KEEP:
            kept.append(tf.concat(logits, 0))
    if step % 500 == 0:
        manager.save(checkpoint_number=step)
        saves += 1
        rss.append(round(_hook._rss_mib()))
        per500.append(round(time.perf_counter() - t0, 1))
        t0 = time.perf_counter()
print(
    f"TRUTH keep={KEEP}: {STEPS} steps, {evals} evaluations, {saves} saves, "
    f"{len([f for f in os.listdir(ckpt_dir) if f.endswith('.index')])} checkpoints left; "
    f"RSS every 500 steps {rss} MiB; s per 500 {per500}",
    file=sys.stderr,
)
