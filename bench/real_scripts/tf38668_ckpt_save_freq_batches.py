# Source: https://github.com/tensorflow/tensorflow/issues/38668 ("In ModelCheckpoint, filepath is
# not accepting batch as formatting parameter"): `ModelCheckpoint` with `save_freq=N` (an integer:
# every N batches) and a file name formatted with `{epoch:02d}` and `{batch}`, so that the saves
# within an epoch do not overwrite each other (Keras 3 formats `batch`). Here an MLP of 1.05 M
# parameters (a 4.1 MB .weights.h5), 4,096 x 784 synthetic rows, batch 16 (256 steps an epoch),
# `save_freq=64`: 4 new files an epoch, 20 epochs, about 330 MB in the end -- growth that matters
# on a small disk. `RS_FIXED=1`: the same with a fixed name (`latest.weights.h5`, overwritten).
# `RS_BEST=1`: `{epoch}-{batch}` names but `save_best_only=True, monitor="loss"` (a new file only
# when the running loss improves: many early, few later). Truth: files and MiB in the directory
# at the end, and per epoch.
import os
import shutil

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

FIXED = os.environ.get("RS_FIXED") == "1"
BEST = os.environ.get("RS_BEST") == "1"
ckpt_dir = "/tmp/rs_tf38668_ckpts"
shutil.rmtree(ckpt_dir, ignore_errors=True)
os.makedirs(ckpt_dir)
rng = np.random.default_rng(38668)
x = rng.random((4096, 784), dtype=np.float32)
y = rng.integers(0, 10, 4096)


def dir_state():
    files = os.listdir(ckpt_dir)
    return len(files), sum(os.path.getsize(os.path.join(ckpt_dir, f)) for f in files) / 2**20


class DirProbe(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        states.append(dir_state())


model = keras.Sequential(
    [
        keras.Input((784,)),
        keras.layers.Dense(1024, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
_hook.mark()
name = "latest.weights.h5" if FIXED else "model.{epoch:02d}-{batch:04d}.weights.h5"
ckpt = keras.callbacks.ModelCheckpoint(
    os.path.join(ckpt_dir, name),
    save_weights_only=True,
    save_freq=64,
    save_best_only=BEST,
    monitor="loss",
    mode="min",
)
# Keras 3.15 sets monitor_op only at the first epoch end, so a batch save with save_best_only
# fails (TypeError: NoneType not callable); the workaround users post: set it up front.
ckpt._set_monitor_op()
states = []
model.fit(x, y, batch_size=16, epochs=20, callbacks=[ckpt, DirProbe()], verbose=0)
if os.environ.get("PLAIN") == "1":
    kind = "fixed name" if FIXED else "save_best_only" if BEST else "epoch-batch names"
    files = " ".join(f"{n}" for n, _ in states)
    print(
        f"TRUTH {kind}: after epoch 1 {states[0][0]} files {states[0][1]:.1f} MiB, 10 {states[9][0]} files"
        f" {states[9][1]:.1f} MiB, 20 {states[-1][0]} files {states[-1][1]:.1f} MiB; files per epoch end: {files}"
    )
