# Source: https://github.com/keras-team/keras/issues/9412 ("Option for using dropout in the predict
# phase (as an approximation to Bayesian DL)": "run predict multiple times and use the expected
# value of these predictions as an estimate ... and its std to quantify the uncertainty"; the
# answer: `Dropout(p)(x, training=True)`, or call the model with `training=True`),
# appeler/ethnicolr#59 (`model(X, training=True)` for the MC samples) and rstudio/keras3#358. An
# inference job, no training: a regressor with two Dropout layers scores 8,000 rows in batches of
# 256, each batch passed 30 times through `model(xb, training=True)` (a `@tf.function` around the
# call), the mean and std of the 30 samples kept per row. Healthy: one trace, flat memory, the
# time is the model's work (30 forward passes of 256 rows).
# Truth: calls, seconds, the spread of the samples, RSS (printed plain).
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(9412)
x = rng.standard_normal((8000, 60)).astype(np.float32)
inputs = keras.Input((60,))
h = keras.layers.Dense(512, activation="relu")(inputs)
h = keras.layers.Dropout(0.3)(h)
h = keras.layers.Dense(512, activation="relu")(h)
h = keras.layers.Dropout(0.3)(h)
model = keras.Model(inputs, keras.layers.Dense(1)(h))
_hook.mark()


@tf.function
def mc_forward(xb):
    return model(xb, training=True)


t0, calls, means, stds, rss = time.perf_counter(), 0, [], [], []
for i in range(0, len(x), 256):
    xb = x[i : i + 256]
    samples = np.stack([mc_forward(xb).numpy() for _ in range(30)])
    calls += 30
    means.append(samples.mean(axis=0))
    stds.append(samples.std(axis=0))
    if i % 2048 == 0:
        rss.append(round(_hook._rss_mib()))
dt = time.perf_counter() - t0
print(
    f"TRUTH {calls} MC-dropout calls over {len(x)} rows in {dt:.1f} s ({1000 * dt / calls:.1f} ms a call of 256 "
    f"rows), mean std {float(np.concatenate(stds).mean()):.3f}; RSS {rss} MiB",
    file=sys.stderr,
)
