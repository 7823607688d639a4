# Source: https://github.com/tensorflow/tensorflow/issues/42272 ("checkpoint.restore can't
# work": saved with `tf.train.Checkpoint(tmodel=testmodel)`, restored and TF prints "Unresolved
# object in checkpoint: (root).tmodel.dense ..."), google-deepmind/acme#106 ("proper way to save
# and load": pages of "Unresolved object in checkpoint: (root).optimizer.v.5" that users silence
# with `expect_partial()`) and tensorflow/models#9231 ("checkpoint won't load for training").
# The shape: a first process trains a GradientTape loop (a `@tf.function` step) for 6 epochs
# and saves `tf.train.Checkpoint(step=step, optimizer=opt, net=model)` with a CheckpointManager
# every epoch. Between the runs the training script was refactored and the model's key renamed
# (`net=` -> `model=`); this second process builds the same model and optimizer, calls
# `ckpt.restore(manager.latest_checkpoint).expect_partial()` (the warnings silenced, as acme#106
# users do), prints "Restored from ..." and trains 6 more epochs. The `step` counter and the
# optimizer's `iterations` are restored (the keys match), the model's weights and Adam's moments
# are not: training silently starts again from random weights.
# RS_FIXED=1: the key kept (`net=`): a real resume.
# Truth: the first process' last loss, the resumed process' first and last epoch loss, the
# restored step and whether the weights equal the saved ones (printed plain).
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

FIXED = os.environ.get("RS_FIXED") == "1"
if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_42272_")
d = os.environ["RS_DIR"]
first = sys.argv[1:] == ["first"]
rng = np.random.default_rng(42272)
x = rng.standard_normal((4000, 32)).astype(np.float32)
y = (np.sin(x[:, :4]).sum(axis=1, keepdims=True) + 0.05 * rng.standard_normal((4000, 1))).astype(np.float32)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(4000, seed=1).batch(50)

tf.keras.utils.set_random_seed(7 if first else 8)
model = tf.keras.Sequential(
    [
        tf.keras.Input((32,)),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
opt = tf.keras.optimizers.Adam(1e-3)
step = tf.Variable(0, dtype=tf.int64)
key = "net" if (first or FIXED) else "model"


def make_manager():  # after the first process ran: a CheckpointManager reads the directory once
    ckpt = tf.train.Checkpoint(step=step, optimizer=opt, **{key: model})
    return ckpt, tf.train.CheckpointManager(ckpt, os.path.join(d, "tf_ckpts"), max_to_keep=3)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    step.assign_add(1)
    return loss


def train(epochs):
    out = []
    for _ in range(epochs):
        tot, n = 0.0, 0
        for xb, yb in ds:
            tot += float(train_step(xb, yb))
            n += 1
        out.append(round(tot / n, 4))
        manager.save()
    return out


if first:
    ckpt, manager = make_manager()
    losses = train(6)
    np.save(os.path.join(d, "w0.npy"), model.layers[0].kernel.numpy())
    print(f"first process losses {losses}", file=sys.stderr)
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'first']; runpy.run_path({__file__!r}, run_name='__main__')"
)
subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"))

ckpt, manager = make_manager()
model(x[:1])  # build, so a matching restore is immediate
ckpt.restore(manager.latest_checkpoint).expect_partial()
if manager.latest_checkpoint:
    print(f"Restored from {manager.latest_checkpoint}", file=sys.stderr)
_hook.mark()
same = bool(np.allclose(model.layers[0].kernel.numpy(), np.load(os.path.join(d, "w0.npy"))))
restored_step, restored_iters = int(step), int(opt.iterations)
losses = train(6)
print(
    f"TRUTH fixed={FIXED}: restored step {restored_step}, optimizer iterations {restored_iters}, "
    f"weights restored {same}; resumed losses {losses}",
    file=sys.stderr,
)
