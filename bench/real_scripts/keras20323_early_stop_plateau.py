# Source: https://github.com/keras-team/keras/issues/20323 ("EarlyStopping() does not return the
# model weights corresponding to the epoch with the best value of the monitored quantity"): a
# regression model fitted with a generous `epochs` and two callbacks, `EarlyStopping(patience,
# restore_best_weights=True)` and `ReduceLROnPlateau`, so the fit stops long before its plan and
# rolls back to the best epoch. Here an MLP of 1.05 M parameters overfitting 1,024 noisy rows
# (validation 1,024), `epochs=1000` planned, EarlyStopping(val_loss, patience=12,
# restore_best_weights=True), ReduceLROnPlateau(val_loss, factor 0.5, patience 4): it stops after
# some 20-40 epochs. Default: healthy. `RS_KEEP=1`: a callback also keeps every epoch's weights
# (4.3 MB) "to compare with the restored best" -- a real growth, but the run ends within ~40
# epochs, not 1,000: a projection "by the planned end" would use a horizon the run never reaches.
# Truth: epochs run, best epoch, RSS at epoch 1 and at the end, learning-rate steps.
import os

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

KEEP = os.environ.get("RS_KEEP") == "1"
rng = np.random.default_rng(20323)
w = rng.normal(size=(784, 1)).astype(np.float32)
x = rng.normal(size=(2048, 784)).astype(np.float32)
y = (x @ w) * 0.05 + rng.normal(size=(2048, 1)).astype(np.float32)
rss, lrs = [], []


class Keep(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.kept = []

    def on_epoch_end(self, epoch, logs=None):
        if KEEP:
            self.kept.append(self.model.get_weights())
        lrs.append(float(self.model.optimizer.learning_rate))
        with open("/proc/self/statm") as f:
            rss.append(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)


model = keras.Sequential(
    [
        keras.Input((784,)),
        keras.layers.Dense(1024, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
_hook.mark()
es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=12, restore_best_weights=True, verbose=1)
rlr = keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=4, verbose=1)
hist = model.fit(
    x[:1024],
    y[:1024],
    validation_data=(x[1024:], y[1024:]),
    epochs=1000,
    batch_size=32,
    callbacks=[es, rlr, Keep()],
    verbose=0,
)
if os.environ.get("PLAIN") == "1":
    vl = hist.history["val_loss"]
    steps = sorted(set(lrs), reverse=True)
    print(
        f"TRUTH {'weights kept' if KEEP else 'healthy'}: {len(vl)} of 1000 epochs, best epoch {int(np.argmin(vl)) + 1}"
        f" (val_loss {min(vl):.4f}); RSS epoch 1 {rss[0]:.0f}, 5 {rss[4]:.0f}, end {rss[-1]:.0f} MiB; lr steps {steps}"
    )
