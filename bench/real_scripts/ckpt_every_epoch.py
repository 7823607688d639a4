# Source shape: keras-team/keras#9874-like "ModelCheckpoint fills the disk": a ModelCheckpoint
# with an epoch-numbered file name and save_best_only=False keeps every epoch's model (~1 MiB
# each), plus a CSVLogger. Real growth of the checkpoint directory, far from filling a disk.
import os

import keras
import numpy as np

x = np.random.rand(4096, 64).astype("float32")
y = (x.sum(axis=1) > 32).astype("float32")
model = keras.Sequential(
    [
        keras.Input((64,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
os.makedirs("checkpoints", exist_ok=True)
cbs = [
    keras.callbacks.ModelCheckpoint("checkpoints/model-{epoch:03d}.keras", save_best_only=False),
    keras.callbacks.CSVLogger("training.csv"),
]
model.fit(x, y, epochs=30, batch_size=64, validation_split=0.1, callbacks=cbs, verbose=2)
