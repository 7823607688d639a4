# Source: https://github.com/keras-team/keras/issues/12100 ("Memory leak using fit_generator"): a
# `keras.utils.Sequence` of image batches (index array, `__getitem__` building each batch,
# `on_epoch_end` reshuffling), a small CNN, few long epochs; the user saw the process grow during
# the epochs. Here the same shape on Keras 3 (`PyDataset`), 64x64x3 synthetic images augmented in
# `__getitem__` (flip, noise), 220 batches of 32 per epoch, 3 epochs of about 12-20 s each on this
# box. Default: healthy. `RS_LEAK=1`: `__getitem__` also keeps each augmented batch as uint8 in a
# list "to look at the augmentations later" (+384 KiB a batch, ~83 MiB an epoch, all epochs: a
# leak inside the epochs that only 3 epoch points would hardly show). `RS_CACHE=1`: a lazy cache
# (`self.cache[idx]` filled on first use, the un-augmented float batch), which grows during epoch 1
# only and is then flat: bounded, not a leak. Truth: RSS at fit start, per epoch end, and after
# batch 110 of each epoch.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

LEAK = os.environ.get("RS_LEAK") == "1"
CACHE = os.environ.get("RS_CACHE") == "1"
N, BATCH, EPOCHS = 220 * 32, 32, 3
rng = np.random.default_rng(12100)
labels = rng.integers(0, 10, N)


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class DataGenerator(keras.utils.PyDataset):
    def __init__(self, n_images, batch_size=32, shuffle=True):
        super().__init__()
        self.batch_size, self.n_images, self.shuffle = batch_size, n_images, shuffle
        self.indexes = np.arange(n_images)
        self.seen = []
        self.cache = {}
        self.rng = np.random.default_rng(0)
        self.on_epoch_end()

    def __len__(self):
        return self.n_images // self.batch_size

    def _load(self, index):
        if CACHE and index in self.cache:
            return self.cache[index]
        ids = self.indexes[index * self.batch_size : (index + 1) * self.batch_size]
        x = np.stack([np.random.default_rng(int(i)).random((64, 64, 3), dtype=np.float32) for i in ids])
        if CACHE:
            self.cache[index] = x
        return x

    def __getitem__(self, index):
        x = self._load(index)
        if self.rng.random() < 0.5:
            x = x[:, :, ::-1, :]
        x = np.clip(x + self.rng.normal(0, 0.02, x.shape).astype(np.float32), 0, 1)
        if LEAK:
            self.seen.append((x * 255).astype(np.uint8))
        if index == len(self) // 2:
            mid.append(rss_mib())
        ids = self.indexes[index * self.batch_size : (index + 1) * self.batch_size]
        return x, labels[ids]

    def on_epoch_end(self):
        if self.shuffle and not CACHE:
            self.rng.shuffle(self.indexes)


class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        ends.append(rss_mib())
        secs.append(time.perf_counter() - self.t0)


model = keras.Sequential(
    [
        keras.Input((64, 64, 3)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
_hook.mark()
mid, ends, secs = [], [], []
start = rss_mib()
model.fit(DataGenerator(N, BATCH), epochs=EPOCHS, callbacks=[Clock()], verbose=0)
if os.environ.get("PLAIN") == "1":
    kind = "kept batches" if LEAK else "lazy cache" if CACHE else "healthy"
    pts = " ".join(
        f"e{i + 1}: mid {m:.0f} end {e:.0f}" for i, (m, e) in enumerate(zip(mid, ends, strict=True))
    )
    print(f"TRUTH {kind}: RSS start {start:.0f} MiB; {pts} MiB; epoch s {' '.join(f'{s:.1f}' for s in secs)}")
