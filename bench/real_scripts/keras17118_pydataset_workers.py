# Source: https://github.com/keras-team/keras/issues/17118 ("why my 'workers=4,
# use_multiprocessing=True' do not work while training?", also tensorflow#47633): a
# `Sequence` (here Keras 3's `PyDataset`) that slices CIFAR-10-shaped arrays per batch, trained
# with a small CNN. Each `__getitem__` here also reads and decodes (a 12 ms sleep: disk/decode
# latency that releases the GIL, plus a per-image normalisation in numpy). Default: no workers
# (Keras 3's default, workers=1 in the main thread): input-bound. `RS_WORKERS=4`: four
# threads, keeps up. `RS_WORKERS=4 RS_MP=1`: four processes. Truth (plain): epoch time against
# the same fit on the batches already in memory (the share of time waiting for input).
import math
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

WORKERS = int(os.environ.get("RS_WORKERS", "1"))
MP = os.environ.get("RS_MP") == "1"
rng = np.random.default_rng(1)
train_images = rng.integers(0, 255, (3200, 32, 32, 3), dtype=np.uint8)
train_labels = rng.integers(0, 10, (3200, 1))
batch_size, epochs = 32, 8


class DataGenerator(keras.utils.PyDataset):
    def __init__(self, x_set, y_set, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = x_set, y_set
        self.batch_size = batch_size

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, idx):
        end = min(self.x.shape[0], (idx + 1) * self.batch_size)
        time.sleep(0.012)
        xb = self.x[idx * self.batch_size : end].astype("float32") / 255.0
        xb = (xb - xb.mean(axis=(1, 2, 3), keepdims=True)) / (xb.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
        return xb, self.y[idx * self.batch_size : end]


kw = {"workers": WORKERS, "use_multiprocessing": MP} if WORKERS > 1 else {}
train_gen = DataGenerator(train_images, train_labels, batch_size, **kw)

model = keras.Sequential(
    [
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(64, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(64, (3, 3), activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ]
)
model.compile(
    optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
)
_hook.mark()


class T(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, e, logs=None):
        times.append(time.perf_counter() - self.t)


times = []
model.fit(train_gen, epochs=epochs, callbacks=[T()], verbose=0)
if os.environ.get("PLAIN") == "1":
    plain = DataGenerator(train_images, train_labels, batch_size)
    xs = np.concatenate([plain[i][0] for i in range(len(plain))])
    times_all = times
    times = []
    model.fit(xs, train_labels, batch_size=batch_size, epochs=4, verbose=0, shuffle=False, callbacks=[T()])
    times_mem, times = times, times_all
    steady = float(np.median(times[1:]))
    comp = float(np.median(times_mem[1:]))  # per epoch, inside one fit
    print(
        f"TRUTH workers={WORKERS} mp={MP}: epochs {[round(v, 2) for v in times]} s; compute alone {comp:.2f} s/epoch;"
        f" waiting share ~{100 * max(0.0, 1 - comp / steady):.0f}%"
    )
