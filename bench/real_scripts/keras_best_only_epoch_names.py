# Source: Keras' ModelCheckpoint docs and the Stack Overflow / keras-team/keras#8060-style
# question "ModelCheckpoint with save_best_only=True still saves a file every epoch": the
# filepath carries the epoch and the metric (`weights.{epoch:02d}-{val_loss:.2f}.weights.h5`,
# the docs' own example), so each improvement writes a NEW file and none is ever replaced: on a
# run whose val_loss improves most epochs, the directory keeps one file per improvement (here
# a 4.6 MiB model, 30 epochs). The saving is what the user asked for; whether to keep them all
# is a choice (disk_growth, fix "keep the last K", is right if said as a choice).
# RS_FIXED=1: `filepath='best.weights.h5'` (one file, overwritten on improvement): healthy, no
# growth.
# Truth: files and MiB in the directory at the end, the epochs that improved.
import os
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

FIXED = os.environ.get("RS_FIXED") == "1"
rng = np.random.default_rng(8060)
x = rng.standard_normal((4000, 64)).astype("float32")
y = (x @ rng.standard_normal((64, 1)) + 0.3 * rng.standard_normal((4000, 1))).astype("float32")
model = keras.Sequential(
    [
        keras.Input((64,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile(keras.optimizers.SGD(1e-3, momentum=0.9), "mse")
_hook.mark()
ckdir = tempfile.mkdtemp(prefix="rs_best_")
name = "best.weights.h5" if FIXED else "weights.{epoch:02d}-{val_loss:.2f}.weights.h5"
cb = keras.callbacks.ModelCheckpoint(
    os.path.join(ckdir, name), monitor="val_loss", save_best_only=True, save_weights_only=True
)
h = model.fit(x, y, epochs=30, batch_size=64, validation_split=0.2, callbacks=[cb], verbose=0)
v = h.history["val_loss"]
improved = [i + 1 for i in range(len(v)) if v[i] < min(v[:i], default=np.inf)]
files = os.listdir(ckdir)
size = sum(os.path.getsize(os.path.join(ckdir, f)) for f in files)
print(
    f"TRUTH fixed={FIXED}: {len(files)} files, {size / 2**20:.1f} MiB in the checkpoint directory; "
    f"{len(improved)} of {len(v)} epochs improved val_loss",
    file=sys.stderr,
)
