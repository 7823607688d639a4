# Source: https://github.com/tensorflow/tensorflow/issues/24643 ("Tensorboard histogram_freq is
# not using GPU: slows down training"): `TensorBoard(log_dir=..., histogram_freq=1,
# write_graph=True, write_images=True)` in a Keras fit, here with the usual companions users
# list beside it: ModelCheckpoint(save_best_only=True), CSVLogger, ReduceLROnPlateau and
# EarlyStopping(restore_best_weights=True). An MNIST-shaped CNN on synthetic learnable data.
# Truth: healthy; the log directory gains a few hundred KiB of events per epoch, the
# checkpoint is overwritten in place. Nothing that can matter: must be quiet.
import os
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

rng = np.random.default_rng(0)
x = rng.random((6000, 28, 28, 1), dtype=np.float32)
y = np.argmax(x.reshape(6000, -1)[:, :780].reshape(6000, 10, 78).mean(axis=2), axis=1)  # learnable labels
out = tempfile.mkdtemp(prefix="rs_tb_")
model = keras.Sequential(
    [
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
_hook.mark()
cbs = [
    keras.callbacks.TensorBoard(
        log_dir=os.path.join(out, "logs"), histogram_freq=1, write_graph=True, write_images=True
    ),
    keras.callbacks.ModelCheckpoint(os.path.join(out, "best.keras"), monitor="val_loss", save_best_only=True),
    keras.callbacks.CSVLogger(os.path.join(out, "training.csv")),
    keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, min_lr=1e-5),
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True),
]
t = time.perf_counter()
h = model.fit(x, y, epochs=20, batch_size=64, validation_split=0.2, callbacks=cbs, verbose=2)


def du(p):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p) for f in fs)


logs = os.path.join(out, "logs")
files = sum(len(fs) for _, _, fs in os.walk(logs))
print(
    f"TRUTH {len(h.history['loss'])} epochs in {time.perf_counter() - t:.1f}s;"
    f" val_loss {h.history['val_loss'][0]:.3f} -> {min(h.history['val_loss']):.3f};"
    f" logs {du(logs) // 1024} KiB, {files} files; checkpoint dir {du(out) // 1024} KiB"
)
