# Source: keras-team/keras#18865-like and tensorflow#48848-like reports ("fit with class_weight
# and a Sequence/PyDataset is slow", "GPU idle while my generator augments"): an imbalanced
# image classifier fed by a `keras.utils.PyDataset` whose `__getitem__` augments every image in
# numpy (random crops, flips, a 3x3 box blur, per-image standardisation: ~8 ms a batch of 64
# 64x64x3 images on this CPU), `fit(..., class_weight={0: 1, 1: 9})`, default workers (1: Keras
# runs `__getitem__` in one worker thread, ahead of the steps). A small CNN, 40 batches, 8 epochs.
# RS_WORKERS=4: `PyDataset(workers=4)` threads (not run in session 13).
# Truth: epoch time against the same fit on the batches already materialised (the share of time
# spent waiting for input), class counts. Measured: 0.76-1.22 s an epoch against 0.58-0.63 in
# memory (24-49% waiting), `__getitem__` 0.31-0.34 s an epoch: borderline, not clearly input-bound.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

WORKERS = int(os.environ.get("RS_WORKERS", "1"))
rng = np.random.default_rng(18865)
N = 64 * 40
raw = rng.integers(0, 256, (N, 72, 72, 3), dtype=np.uint8)
labels = (rng.random(N) < 0.1).astype("int64")


class Images(keras.utils.PyDataset):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.rng = np.random.default_rng(0)

    def __len__(self):
        return N // 64

    def __getitem__(self, i):
        out = np.empty((64, 64, 64, 3), np.float32)
        for j, k in enumerate(range(i * 64, i * 64 + 64)):
            dy, dx = self.rng.integers(0, 9, 2)
            img = raw[k, dy : dy + 64, dx : dx + 64].astype(np.float32)
            if self.rng.random() < 0.5:
                img = img[:, ::-1]
            pad = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")  # a 3x3 box blur
            img = sum(pad[a : a + 64, b : b + 64] for a in range(3) for b in range(3)) / 9.0
            out[j] = (img - img.mean()) / (img.std() + 1e-6)
        return out, labels[i * 64 : i * 64 + 64]


model = keras.Sequential(
    [
        keras.Input((64, 64, 3)),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ]
)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
_hook.mark()
cw = {0: 1.0, 1: 9.0}
ds = Images(workers=WORKERS)
t0 = time.perf_counter()
model.fit(ds, epochs=8, class_weight=cw, verbose=0)
t_fit = (time.perf_counter() - t0) / 8
t0 = time.perf_counter()
batches = [ds[i] for i in range(len(ds))]
t_get = (time.perf_counter() - t0) / 1
xs, ys = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
model.fit(xs, ys, batch_size=64, epochs=1, class_weight=cw, verbose=0, shuffle=False)
t0 = time.perf_counter()
model.fit(xs, ys, batch_size=64, epochs=2, class_weight=cw, verbose=0, shuffle=False)
t_mem = (time.perf_counter() - t0) / 2
print(
    f"TRUTH workers={WORKERS}: PyDataset epoch {t_fit:.2f} s, __getitem__ for one epoch {t_get:.2f} s, "
    f"in-memory epoch {t_mem:.2f} s (waiting ~{max(0.0, 1 - t_mem / t_fit):.0%}); class 1 share {labels.mean():.2f}",
    file=sys.stderr,
)
