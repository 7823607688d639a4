# Source: https://github.com/keras-team/keras/issues/3230 ("Can't use auc_roc_score (or any other
# metric function based on numpy) as a custom metric?"): the answer is a callback that predicts the
# validation set at `on_epoch_end` and computes the ROC AUC there; was84san (2018-06-27): "What
# about accumulating the y_pred ... then concatenate them ... and calculate the AUC". Written as
# users do, the lists are filled in `__init__`/`on_train_begin` and never emptied, so each epoch's
# AUC is computed over the predictions of every epoch so far (a threshold sweep, 500 thresholds,
# like the ROC-plot callbacks in the thread): the callback, and the epoch, get slower every epoch.
# Default: the lists kept (a real slowdown in the callback). `RS_RESET=1`: the healthy twin that
# empties them in `on_epoch_begin`. Binary MLP, 8,000 x 64 train rows, 10,000 validation, 40 epochs.
# Truth: epoch seconds and the callback's own seconds at epochs 2-4 and 38-40.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

RESET = os.environ.get("RS_RESET") == "1"
rng = np.random.default_rng(3230)
w = rng.normal(size=64).astype(np.float32)
x = rng.normal(size=(8000, 64)).astype(np.float32)
y = (x @ w + rng.normal(size=8000) > 0).astype(np.float32)
xv = rng.normal(size=(10000, 64)).astype(np.float32)
yv = (xv @ w + rng.normal(size=10000) > 0).astype(np.float32)


def roc_auc(y_true, y_score, n_thresholds=500):
    tpr, fpr = [], []
    pos, neg = y_true == 1, y_true == 0
    for t in np.linspace(1, 0, n_thresholds):
        hit = y_score >= t
        tpr.append((hit & pos).sum() / pos.sum())
        fpr.append((hit & neg).sum() / neg.sum())
    return float(np.trapezoid(tpr, fpr))


class RocAucCallback(keras.callbacks.Callback):
    def __init__(self, validation_data):
        super().__init__()
        self.x_val, self.y_val = validation_data
        self.y_preds, self.y_trues = [], []
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t_epoch = time.perf_counter()
        if RESET:
            self.y_preds, self.y_trues = [], []

    def on_epoch_end(self, epoch, logs=None):
        t0 = time.perf_counter()
        self.y_preds.append(self.model.predict(self.x_val, batch_size=1024, verbose=0).ravel())
        self.y_trues.append(self.y_val)
        auc = roc_auc(np.concatenate(self.y_trues), np.concatenate(self.y_preds))
        logs["val_auc"] = auc
        now = time.perf_counter()
        self.seconds.append((now - self.t_epoch, now - t0))


model = keras.Sequential(
    [
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="binary_crossentropy")
_hook.mark()
cb = RocAucCallback((xv, yv))
model.fit(x, y, batch_size=64, epochs=40, callbacks=[cb], verbose=0)
if os.environ.get("PLAIN") == "1":
    early = np.mean(cb.seconds[1:4], axis=0)
    late = np.mean(cb.seconds[-3:], axis=0)
    print(
        f"TRUTH lists {'reset each epoch' if RESET else 'kept'}: epoch {early[0]:.3f} s -> {late[0]:.3f} s,"
        f" callback {early[1]:.3f} s -> {late[1]:.3f} s (epochs 2-4 vs 38-40);"
        f" kept predictions {sum(len(p) for p in cb.y_preds)}"
    )
