# Source: https://github.com/keras-team/keras/issues/20245 ("Question about Memory Leak (all
# backends)"): Keras 3 with `os.environ["KERAS_BACKEND"] = "jax"` set before `import keras`, a small
# subclass-free MLP fitted on random data; the user watched RAM across fits and epochs. Here the
# same Keras 3 script on the JAX backend, MNIST-shaped synthetic data (4,096 x 784, 10 classes),
# Dense(1024) -> Dense(256) -> Dense(10), 30 epochs. Default: healthy (RSS flat). `RS_LEAK=1`: a
# "snapshot" callback keeps each epoch's weights as the backend's own arrays
# (`[keras.ops.copy(v.value) for v in ...]`: jax.Array buffers (`v.value` alone is donated and deleted by the next step), 4.3 MB an epoch, not numpy,
# not Python objects) to average them later (SWA by hand) -- a real growth. `RS_LOOP=1`: the
# issue's own loop, a new model built and fitted 12 times with no `clear_session()`.
# Truth: RSS after the model is built and at exit, and per epoch (or per fit).
import os

os.environ["KERAS_BACKEND"] = "jax"

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

LEAK = os.environ.get("RS_LEAK") == "1"
LOOP = os.environ.get("RS_LOOP") == "1"
rng = np.random.default_rng(20245)
x = rng.random((4096, 784), dtype=np.float32)
y = rng.integers(0, 10, 4096)
rss = []


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Snapshots(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.kept = []

    def on_epoch_end(self, epoch, logs=None):
        if LEAK:
            self.kept.append([keras.ops.copy(v.value) for v in self.model.trainable_variables])
        rss.append(rss_mib())


def build():
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


if LOOP:
    fit_rss = []
    for i in range(12):
        model = build()
        if i == 0:
            _hook.mark()
        model.fit(x, y, batch_size=128, epochs=4, verbose=0)
        fit_rss.append(rss_mib())
    if os.environ.get("PLAIN") == "1":
        per = (fit_rss[-1] - fit_rss[2]) / (len(fit_rss) - 3)
        print(
            f"TRUTH jax, 12 new models: RSS after fit 1 {fit_rss[0]:.0f}, 3 {fit_rss[2]:.0f}, 12 {fit_rss[-1]:.0f} MiB ({per:.2f} MiB/fit)"
        )
else:
    model = build()
    _hook.mark()
    snap = Snapshots()
    model.fit(x, y, batch_size=128, epochs=30, callbacks=[snap], verbose=0)
    if LEAK:
        avg = [np.mean([np.asarray(k[i]) for k in snap.kept[-10:]], axis=0) for i in range(len(snap.kept[0]))]
    if os.environ.get("PLAIN") == "1":
        per = (rss[-1] - rss[4]) / (len(rss) - 5)
        print(
            f"TRUTH jax, {'weights kept as jax arrays' if LEAK else 'healthy'}: RSS after epoch 1 {rss[0]:.0f},"
            f" 5 {rss[4]:.0f}, 30 {rss[-1]:.0f} MiB ({per:.2f} MiB/epoch from epoch 5)"
        )
