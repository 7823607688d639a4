# Source: https://github.com/tensorflow/tensorflow/pull/44867 ("add CheckpointManager example":
# `checkpoint = tf.train.Checkpoint(model=model)`, saved every N steps with `max_to_keep=3`;
# the reviewer: "Should the optimizer be checkpointed too? Otherwise restoring from a checkpoint
# will reset slot variables and start numbering at 0 again."). A GradientTape loop (no epochs
# marked: the hook cuts them from the dataset's passes) that restores
# `manager.latest_checkpoint` at its start and saves at each epoch's end. This script runs the
# first process itself (4 epochs from scratch, hooked when this one is), then resumes it here
# for 4 more, both writing into one EPOCHWATCH_DIR. Default: the checkpoint tracks
# step, optimizer and model (healthy resume: quiet). `RS_NO_OPT=1`: the PR's
# `tf.train.Checkpoint(model=model)`: Adam restarts at step 0 (optimizer_state_not_restored).
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

NO_OPT = os.environ.get("RS_NO_OPT") == "1"
if "RS_DIR" not in os.environ:  # one checkpoint directory for both processes
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_44867_")
rng = np.random.default_rng(8)
x = rng.random((4096, 64), dtype=np.float32)
w = rng.standard_normal((64, 1)).astype("float32")
y = (x @ w + 0.1 * rng.standard_normal((4096, 1))).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(4096).batch(32)

model = tf.keras.Sequential(
    [tf.keras.Input((64,)), tf.keras.layers.Dense(128, activation="relu"), tf.keras.layers.Dense(1)]
)
optimizer = tf.keras.optimizers.Adam(1e-3)
step = tf.Variable(0, dtype=tf.int64)
checkpoint = (
    tf.train.Checkpoint(model=model)
    if NO_OPT
    else tf.train.Checkpoint(step=step, optimizer=optimizer, model=model)
)
manager = tf.train.CheckpointManager(checkpoint, os.environ["RS_DIR"], max_to_keep=3)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    step.assign_add(1)
    return loss


first = sys.argv[1:] == ["first"]
if not first:
    hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
    code = (
        f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
        f"sys.argv = [{__file__!r}, 'first']; runpy.run_path({__file__!r}, run_name='__main__')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"))
    checkpoint.restore(
        tf.train.latest_checkpoint(os.environ["RS_DIR"])
    )  # the manager read it before the save
    _hook.mark()
losses = []
for _epoch in range(4):
    total = tf.constant(0.0)
    n = 0
    for xb, yb in ds:
        total += train_step(xb, yb)
        n += 1
    losses.append(round(float(total) / n, 5))
    manager.save()
print(
    f"{'TRUTH first process' if first else 'TRUTH resumed'}: optimizer iterations {int(optimizer.iterations.numpy())},"
    f" step {int(step.numpy())} (checkpoint has optimizer: {not NO_OPT}); epoch losses {losses}"
)
