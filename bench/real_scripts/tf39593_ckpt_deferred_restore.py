# Source: https://github.com/tensorflow/tensorflow/issues/39593 ("How does delayed restoration
# of variables in tensorflow checkpoint restore work?": a subclassed `Net(tf.keras.Model)` with a
# Dense layer, saved with `tf.train.Checkpoint(...)` + `CheckpointManager`) and #60552 (weights
# loaded into a module not yet built show no variables until it is called); the TF checkpoint
# guide's "delayed restorations". A custom GradientTape loop trains Net for 4 epochs and saves
# `tf.train.Checkpoint(step=, optimizer=, net=)` through a CheckpointManager; then a NEW Net and a
# NEW Adam, neither built, `ckpt.restore(manager.latest_checkpoint)` (nothing to match yet: the
# values wait and are assigned when the layers and the optimizer's slots are created), and the
# loop goes on 4 more epochs. With tf.keras (TF 2.x) the values waited and were assigned when
# the layers and the optimizer's slots were created. With Keras 3 (measured here, TF 2.21 /
# Keras 3.15) they are NOT: the first Dense layer's deferred kernel comes back as a SECOND
# variable (`net_1/dense_3/kernel` twice in `net2.weights`, 7 variables for 6; the layer computes
# with the fresh one; "Gradients do not exist for variables ['net_1/dense_3/kernel']"), so the
# resumed run starts from a random first layer: the loss jumps back to a fresh start's.
# `status.assert_consumed()` would say so ("net/l1/_kernel ... not assigned a value"); nobody
# calls it. RS_BUILD=1: `net2(x[:1])` BEFORE the restore (the variables exist, the restore
# matches them at once): healthy.
# Truth: the weights after the first call equal the saved ones (max |diff|), Adam's iterations,
# the last loss before and the first loss after the restore.
import os
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf


class Net(tf.keras.Model):
    def __init__(self):
        super().__init__()
        self.l1 = tf.keras.layers.Dense(256, activation="relu")
        self.l2 = tf.keras.layers.Dense(256, activation="relu")
        self.out = tf.keras.layers.Dense(5)

    def call(self, x):
        return self.out(self.l2(self.l1(x)))


rng = np.random.default_rng(39593)
x = rng.standard_normal((32768, 32)).astype("float32")
w = rng.standard_normal((32, 5)).astype("float32")
y = np.tanh(x @ w).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(32768, seed=1).batch(64)
ckpt_dir = tempfile.mkdtemp(prefix="rs_39593_")


def train(net, opt, ckpt, epochs):
    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(net(xb) - yb))
        grads = tape.gradient(loss, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables, strict=False))
        ckpt.step.assign_add(1)
        return loss

    losses = []
    for epoch in range(epochs):
        for i, (xb, yb) in enumerate(ds):
            loss = step(xb, yb)
            if i == 0:
                losses.append(float(loss))
        print("epoch", epoch, "loss", float(loss))
    return losses


net = Net()
opt = tf.keras.optimizers.Adam(1e-3)
ckpt = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), optimizer=opt, net=net)
manager = tf.train.CheckpointManager(ckpt, ckpt_dir, max_to_keep=3)
_hook.mark()
before = train(net, opt, ckpt, 4)
manager.save()
saved = [v.numpy().copy() for layer in (net.l1, net.l2, net.out) for v in (layer.kernel, layer.bias)]
saved_iters = int(opt.iterations.numpy())

net2 = Net()  # not built: no variables yet
opt2 = tf.keras.optimizers.Adam(1e-3)
ckpt2 = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64), optimizer=opt2, net=net2)
BUILD = os.environ.get("RS_BUILD") == "1"
if BUILD:
    net2(x[:1])
status = ckpt2.restore(tf.train.latest_checkpoint(ckpt_dir))
net2(x[:1])  # builds the layers (deferred: their kernels should get the saved values now)
diff = max(
    float(np.abs(a - b.numpy()).max())
    for a, b in zip(
        saved, [v for layer in (net2.l1, net2.l2, net2.out) for v in (layer.kernel, layer.bias)], strict=True
    )
)
after = train(net2, opt2, ckpt2, 4)
print(
    f"TRUTH build_first={BUILD}: restored weights max |diff| {diff:.2g} ({len(net2.weights)} variables), step "
    f"{int(ckpt2.step.numpy())}, Adam iterations {saved_iters} saved -> {int(opt2.iterations.numpy())} after 4 more "
    f"epochs; first-batch loss per epoch before {[round(v, 4) for v in before]}, after {[round(v, 4) for v in after]}",
    file=sys.stderr,
)
