# Source: https://github.com/keras-team/keras/issues/16298 ("How to reset model in function and for
# loop (model.reset_state)": "I want to grid search to find the best model. I checked the
# previous result gives impact to the next one, so I try to use model.reset_state. But it
# doesn't work"), keras#3247 ("Training loss/accuracy does 'continue' between 2 training
# sessions, although the weights were (hopefully) reseted") and keras#6164 (fchollet: "`compile`
# does not change the state of the model"). A learning-rate x batch-size grid search over one
# model built once: for each of 6 settings, `model.reset_metrics()` (the user's "reset"), a new
# `compile(Adam(lr))`, `fit(..., epochs=4, validation_split=0.2)`, the best val_loss kept per
# setting; the winner is the setting with the lowest. Each setting starts from the weights the
# previous one left: the later settings get 4, 8, ... 20 more epochs and "win".
# RS_FIXED=1: the initial weights saved once (`w0 = model.get_weights()`) and put back before
# each setting (`model.set_weights(w0)`, keras#341's answer).
# Truth: the first-epoch loss of each setting's fit, each setting's best val_loss and the winner
# (printed plain).
import os
import sys

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

FIXED = os.environ.get("RS_FIXED") == "1"
rng = np.random.default_rng(16298)
x = rng.standard_normal((6000, 10)).astype(np.float32)
y = ((x**2).sum(axis=1) > 9.34).astype("float32")[:, None]  # make_hastie_10_2's rule
keras.utils.set_random_seed(16298)
model = keras.Sequential(
    [
        keras.Input((10,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
w0 = model.get_weights()
_hook.mark()
grid = [(lr, bs) for lr in (3e-3, 1e-3, 3e-4) for bs in (64, 128)]
first, best = [], {}
for lr, bs in grid:
    if FIXED:
        model.set_weights(w0)
    model.reset_metrics()
    model.compile(keras.optimizers.Adam(lr), "binary_crossentropy", metrics=["accuracy"])
    h = model.fit(x, y, epochs=4, batch_size=bs, validation_split=0.2, verbose=0)
    first.append(round(h.history["loss"][0], 3))
    best[(lr, bs)] = round(min(h.history["val_loss"]), 4)
winner = min(best, key=best.get)
print(
    f"TRUTH fixed={FIXED}: first-epoch loss per setting {first}; best val_loss {list(best.values())}; "
    f"winner lr={winner[0]} batch={winner[1]} (setting {grid.index(winner) + 1} of {len(grid)})",
    file=sys.stderr,
)
