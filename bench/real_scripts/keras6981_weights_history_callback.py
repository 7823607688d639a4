# Source: https://github.com/keras-team/keras/issues/6981 ("Cache each epoch weights or allow
# roll back to specific epoch"): "If I run a 30 epoch at beginning, but found 12th is the best
# after finish. I need rerun training" -- the answer users write is a callback that keeps
# `self.model.get_weights()` at every `on_epoch_end` in a list, to roll back afterwards. Here an
# MLP of 1.07 M parameters (4.3 MB of weights kept per epoch), MNIST-shaped synthetic data, 40
# epochs. Default: the weights kept (RSS grows about 4.3 MB an epoch: a real, if deliberate,
# growth). `RS_FLOATS=1`: the healthy twin that keeps only the epoch's logs (floats) and the best
# epoch's weights (one copy). Truth: RSS after the model is built and at exit, per epoch.
import os
import resource

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

FLOATS = os.environ.get("RS_FLOATS") == "1"
rng = np.random.default_rng(5)
x = rng.random((2048, 784), dtype=np.float32)
y = rng.integers(0, 10, 2048)


class WeightsHistory(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.epoch_weights = []
        self.logs = []
        self.best, self.best_weights = np.inf, None

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append({k: float(v) for k, v in logs.items()})
        if FLOATS:
            if logs["loss"] < self.best:
                self.best, self.best_weights = logs["loss"], self.model.get_weights()
        else:
            self.epoch_weights.append(self.model.get_weights())
        with open("/proc/self/statm") as f:
            rss.append(int(f.read().split()[1]) * resource.getpagesize() / 2**20)


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
rss = []
hist_cb = WeightsHistory()
model.fit(x, y, batch_size=64, epochs=40, callbacks=[hist_cb], verbose=0)
best = int(np.argmin([d["loss"] for d in hist_cb.logs]))
if not FLOATS:
    model.set_weights(hist_cb.epoch_weights[best])  # roll back to the best epoch
if os.environ.get("PLAIN") == "1":
    per = (rss[-1] - rss[5]) / (len(rss) - 6)
    print(
        f"TRUTH keep={'floats+best' if FLOATS else 'weights every epoch'}: RSS after epoch 1 {rss[0]:.0f} MiB,"
        f" 6 {rss[5]:.0f}, 40 {rss[-1]:.0f} MiB ({per:.2f} MiB/epoch from epoch 6); best epoch {best + 1}"
    )
