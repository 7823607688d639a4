# Source: https://github.com/BNN-UPC/RouteNet-Erlang/issues/8 ("Checkpoints in
# `/Scalability/ckpt_dir/` are ignored ... `Starting training from scratch...` If this is supposed
# to showcase a training from a checkpoint, I think a `checkpoint` file is required"; the answer:
# "in this TF version you need the `checkpoint` file to detect the 'latest' trained checkpoint.
# Otherwise, it starts from scratch"). The TF checkpoint guide's resume idiom:
# `ckpt.restore(manager.latest_checkpoint)`, then `if manager.latest_checkpoint: print("Restored
# from ...") else: print("Initializing from scratch.")`. A first process trains a GradientTape
# loop 6 epochs and saves with a `CheckpointManager`; the `checkpoint` state file is then lost (the
# repository shipped only the `.index` / `.data` files); this process builds the same model, calls
# `ckpt.restore(manager.latest_checkpoint)`, which is `ckpt.restore(None)`: nothing is restored,
# and training starts again from random weights with the loss back at its first value.
# RS_INDEX=1: the twin, the `checkpoint` file kept (restored: the loss goes on from where it was).
# The first process is started by this script (hooked when this one is).
# Truth: the first process's losses, and this one's (printed by both runs).
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(8)
x = rng.random((4096, 20), dtype=np.float32)
y = (np.tanh(x @ rng.standard_normal((20, 1)).astype(np.float32)) * 3).astype(np.float32)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(4096, seed=1).batch(64)
if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_routenet8_")
ckpt_dir = os.path.join(os.environ["RS_DIR"], "ckpt_dir")
model = tf.keras.Sequential(
    [tf.keras.Input((20,)), tf.keras.layers.Dense(128, activation="relu"), tf.keras.layers.Dense(1)]
)
optimizer = tf.keras.optimizers.Adam(1e-3)
ckpt = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), optimizer=optimizer, model=model)
manager = None  # made where each process starts (it reads the directory's state file then)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
    optimizer.apply_gradients(
        zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=False)
    )
    ckpt.step.assign_add(1)
    return loss


def train(epochs):
    losses = []
    for _ in range(epochs):
        total = n = 0
        for xb, yb in ds:
            total += float(train_step(xb, yb))
            n += 1
        losses.append(round(total / n, 4))
        manager.save()
    return losses


if sys.argv[1:] == ["train"]:
    manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=3)
    print(f"first process: losses {train(6)}, step {int(ckpt.step)}")
    if os.environ.get("RS_INDEX") != "1":
        os.remove(os.path.join(ckpt_dir, "checkpoint"))  # the state file the repository lacked
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'train']; runpy.run_path({__file__!r}, run_name='__main__')"
)
out = subprocess.run(
    [sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"), capture_output=True, text=True
)
print(out.stdout.strip())
_hook.mark()
manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=3)
ckpt.restore(manager.latest_checkpoint)
restored = manager.latest_checkpoint is not None
print("Restored from", manager.latest_checkpoint) if restored else print("Initializing from scratch.")
print(
    f"TRUTH checkpoint file kept={os.environ.get('RS_INDEX') == '1'}; restored={restored}, step at start "
    f"{int(ckpt.step)}; files in ckpt_dir {sorted(os.listdir(ckpt_dir))[:4]}...; resumed losses {train(6)}"
)
