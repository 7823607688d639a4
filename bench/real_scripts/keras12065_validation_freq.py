# Source: https://github.com/tflearn/tflearn/issues/176 ("When training a small model over a large
# number of epochs the validation set tests take the majority of the runtime. It would be very
# useful to have the validation set run every n epochs instead of every epoch ... if I wanted to
# train over 1000 epochs I could set a param in DNN.fit() to test validation every 10 or 20
# epochs"), which Keras answered with `fit(validation_freq=N)`
# (https://github.com/keras-team/keras/pull/12065). A small MLP on 12,288 rows, a validation set
# five times larger (65,536 rows), `validation_freq=5`, 30 epochs: every fifth epoch validates
# and is several times slower than the others, by design. Periodic slow epochs, no trend.
# RS_FREQ=1: validate every epoch (the uniform twin).
# RS_CALLBACK=1: no validation_data; a callback evaluates the large holdout set itself every
# fifth epoch (`if epoch % 5 == 4: self.model.evaluate(...)`), as scripts did before
# validation_freq existed.
# Truth: each epoch's wall seconds (printed by the plain run).
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

FREQ = int(os.environ.get("RS_FREQ", "5"))
CALLBACK = os.environ.get("RS_CALLBACK") == "1"
rng = np.random.default_rng(12065)
x, y = rng.random((12288, 64), dtype=np.float32), rng.integers(0, 2, 12288)
xv, yv = rng.random((65536, 64), dtype=np.float32), rng.integers(0, 2, 65536)
model = keras.Sequential(
    [
        keras.Input((64,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
secs, t = [], [0.0]


class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        t[0] = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        secs.append(round(time.perf_counter() - t[0], 2))


class HoldoutEval(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch % 5 == 4:
            loss, acc = self.model.evaluate(xv, yv, batch_size=32, verbose=0)
            print(f"epoch {epoch + 1}: holdout loss {loss:.4f} acc {acc:.4f}")


_hook.mark()
cbs = [Timer()] + ([HoldoutEval()] if CALLBACK else [])
kw = {} if CALLBACK else {"validation_data": (xv, yv), "validation_freq": FREQ}
model.fit(x, y, batch_size=32, epochs=30, verbose=0, callbacks=cbs, **kw)
# Timer's on_epoch_end runs before Keras' own validation is counted in it only for the callback
# variant; for validation_freq the slow epochs show in the time between epoch ends:
print(f"TRUTH freq={FREQ} callback={CALLBACK}; epoch seconds (callback to callback) {secs}")
