# Source: the TensorBoard callback as users post it in "TensorBoard logs take too much disk space"
# threads (e.g. https://github.com/tensorflow/tensorboard/issues/2296, "the events file grows
# huge with histogram_freq=1") and TF's image-classification tutorials:
# `TensorBoard(log_dir, histogram_freq=1, write_images=True, update_freq='batch')` on a small
# CNN, one new log directory per run (`logs/fit/` + a timestamp). 16 epochs of 60 steps.
# RS_BIG=1: a 12.6M-weight dense head (write_images writes each kernel as an image, histograms
# summarise each weight every epoch): the log grows ~MiB per epoch.
# Truth: the log directory's size after each epoch (printed by the plain run). Tens of KiB to a
# few MiB per epoch on a disk with tens of GiB free is nothing to warn about; at most info.
import datetime
import os
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

BIG = os.environ.get("RS_BIG") == "1"
rng = np.random.default_rng(0)
x = rng.random((3840, 28, 28, 1), dtype=np.float32)
y = rng.integers(0, 10, 3840)
layers = [
    tf.keras.Input((28, 28, 1)),
    tf.keras.layers.Conv2D(16, 3, activation="relu"),
    tf.keras.layers.MaxPooling2D(),
    tf.keras.layers.Conv2D(32, 3, activation="relu"),
    tf.keras.layers.MaxPooling2D(),
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(1536 if BIG else 64, activation="relu"),
]
if BIG:
    layers.append(tf.keras.layers.Dense(1536, activation="relu"))
layers.append(tf.keras.layers.Dense(10))
model = tf.keras.Sequential(layers)
model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
root = tempfile.mkdtemp(prefix="rs_tb_")
log_dir = os.path.join(root, "logs", "fit", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**20


sizes = []
track = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: sizes.append(round(du(root), 2)))
tb = tf.keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=1, write_images=True, update_freq="batch")
_hook.mark()
model.fit(x, y, epochs=16, batch_size=64, validation_split=0.1, callbacks=[tb, track], verbose=0)
print(f"TRUTH log dir MiB after each epoch {sizes}")
