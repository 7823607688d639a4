# Source: https://github.com/keras-team/keras/issues/20256 ("Early-stopping does not work
# properly in Keras 3 when used in a for loop") and the Stack Overflow pattern it comes from:
# one model, `for epoch in range(N): model.fit(x, y, epochs=1, validation_data=...,
# callbacks=[es])` (so the loop can log, save or change something between epochs), with
# `es = EarlyStopping(monitor='val_loss', patience=3, restore_best_weights=True)`. Each fit is
# one epoch, and EarlyStopping.on_train_begin resets `wait`, `best` and `best_weights` ("allow
# instances to be re-used across fit() calls"), and it never stops at epoch 0 of a fit: it can
# never stop, nor restore the best weights. A small noisy data set and a wide net: val_loss
# bottoms out early and climbs while the loop runs all 40 rounds, and the model kept is the
# last (overfit) one. RS_FIXED=1: one `fit(epochs=40, callbacks=[es])`: it stops and restores.
# Truth: the epoch with the best val_loss, the epochs run, val_loss at the best and at the end
# (of the weights kept, measured with evaluate).
import os
import sys

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

FIXED = os.environ.get("RS_FIXED") == "1"
rng = np.random.default_rng(20256)
x = rng.standard_normal((600, 40)).astype("float32")
y = ((x[:, :3].sum(axis=1) + 1.5 * rng.standard_normal(600)) > 0).astype("float32")
xv = rng.standard_normal((400, 40)).astype("float32")
yv = ((xv[:, :3].sum(axis=1) + 1.5 * rng.standard_normal(400)) > 0).astype("float32")
keras.utils.set_random_seed(20256)
model = keras.Sequential(
    [
        keras.Input((40,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
_hook.mark()
es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
n, val = 40, []
if FIXED:
    h = model.fit(x, y, epochs=n, batch_size=16, validation_data=(xv, yv), callbacks=[es], verbose=0)
    val = h.history["val_loss"]
else:
    for epoch in range(n):
        h = model.fit(x, y, epochs=1, batch_size=16, validation_data=(xv, yv), callbacks=[es], verbose=0)
        val.append(h.history["val_loss"][0])
        print(f"round {epoch}: val_loss {val[-1]:.4f}")
kept = model.evaluate(xv, yv, verbose=0)[0]
best = int(np.argmin(val))
print(
    f"TRUTH fixed={FIXED}: best val_loss {val[best]:.4f} at epoch {best + 1}; ran {len(val)} epochs; "
    f"the model kept has val_loss {kept:.4f} (last epoch's {val[-1]:.4f})",
    file=sys.stderr,
)
