# Source shape: keras-team/keras#9874 / tensorflow#38561-era scripts, and the tutorial pattern
# users paste into "my disk filled up" issues (e.g. tensorflow/tensorboard#2471 "histogram_freq=1
# makes huge event files", keras#10947 "ModelCheckpoint saves every epoch"): ModelCheckpoint with
# an epoch-numbered `.h5` name and save_best_only=False (the full model, weights + Adam's moments,
# every epoch) plus TensorBoard(histogram_freq=1) writing every weight's histogram each epoch.
# A 1,024-1,024-1,024-10 MLP (2.9M weights: ~34 MiB an .h5 with the optimizer), 40 epochs of 32
# batches. RS_KERAS=1: `.keras` files instead.
# Truth: the checkpoint directory's and the log directory's sizes after each epoch (printed by the
# plain run), files.
import os
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

EXT = "keras" if os.environ.get("RS_KERAS") == "1" else "h5"
root = tempfile.mkdtemp(prefix="rs_h5tb_")
ckpt_dir, log_dir = os.path.join(root, "checkpoints"), os.path.join(root, "logs")
os.makedirs(ckpt_dir)
rng = np.random.default_rng(9874)
x = rng.random((2048, 1024), dtype=np.float32)
y = rng.integers(0, 10, 2048)
model = keras.Sequential(
    [
        keras.Input((1024,)),
        keras.layers.Dense(1024, activation="relu"),
        keras.layers.Dense(1024, activation="relu"),
        keras.layers.Dense(10),
    ]
)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
_hook.mark()


def du(path):
    files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    return round(sum(os.path.getsize(f) for f in files) / 2**20, 1), len(files)


sizes = []


class Sizes(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        sizes.append((du(ckpt_dir), du(log_dir)))


cbs = [
    keras.callbacks.ModelCheckpoint(os.path.join(ckpt_dir, "model-{epoch:03d}." + EXT), save_best_only=False),
    keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=1),
    Sizes(),
]
model.fit(x, y, batch_size=64, epochs=40, validation_split=0.1, callbacks=cbs, verbose=0)
print(
    f"TRUTH ext={EXT}: (ckpt MiB, files), (logs MiB, files) at epochs 1, 2, 10, 40: "
    f"{[sizes[i] for i in (0, 1, 9, 39)]}; per epoch ckpt +{(sizes[-1][0][0] - sizes[0][0][0]) / 39:.1f} MiB, "
    f"logs +{(sizes[-1][1][0] - sizes[0][1][0]) / 39:.2f} MiB; dir {root}",
    file=sys.stderr,
)
