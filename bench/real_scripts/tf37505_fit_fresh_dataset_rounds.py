# Source: https://github.com/tensorflow/tensorflow/issues/37505 ("Memory leak in model.fit",
# TF 2.1; memory printed after each call climbs 6879 -> 9480 MB) and
# https://github.com/tensorflow/tensorflow/issues/50379 ("memory use increases with consecutive"
# fit calls): one model trained online, each round on new data wrapped in a fresh
# `tf.data.Dataset.from_tensor_slices((x, y)).shuffle(...).batch(32)` and `model.fit(ds, epochs=2)`.
# 30 rounds of 2,048 new rows. Truth (TF 2.21 / Keras 3): RSS per round printed plain.
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf
from tensorflow import keras

rng = np.random.default_rng(0)
w_true = rng.normal(size=(64, 1)).astype("float32")
model = keras.Sequential(
    [
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile(optimizer="adam", loss="mse")
_hook.mark()
rss, secs = [], []
for _r in range(30):
    x = rng.normal(size=(2048, 64)).astype("float32")
    y = x @ w_true + 0.1 * rng.normal(size=(2048, 1)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2048).batch(32)
    t = time.perf_counter()
    h = model.fit(ds, epochs=2, verbose=0)
    secs.append(time.perf_counter() - t)
    rss.append(_hook._rss_mib())
print(
    "TRUTH RSS every 5th round {} MiB (slope {:.2f} MiB/round over rounds 3-30); fit seconds first5 {:.3f} last5 {:.3f}; loss {:.3f}".format(
        [round(v) for v in rss[::5]] + [round(rss[-1])],
        np.polyfit(np.arange(3, 30), rss[3:], 1)[0],
        np.mean(secs[1:6]),
        np.mean(secs[-5:]),
        h.history["loss"][-1],
    )
)
