# Source: https://github.com/secondmind-labs/trieste/issues/722 ("Don't decorate acquisition
# function call methods with tf.function": `__call__` of the acquisition classes is a
# `@tf.function`; a new acquisition object is built every Bayesian-optimisation step, so each
# one traces anew, and "some memory is leaked by tensorflow regardless of where the graphs are
# stored") and https://github.com/tensorflow/tensorflow/issues/34905 (a `@tf.function` method
# retraces per instance). A BO-like loop: each round fits a small Keras surrogate for one epoch
# on the points so far, then builds a new `ExpectedImprovement(model, best)` whose `@tf.function
# __call__` scores 4,096 candidates in 8 batches, and adds the best candidate. 40 rounds.
# `RS_ONCE=1`: one acquisition object, its `best` a tf.Variable assigned each round (trieste's fix).
# Truth (printed): traces of `__call__` (a Python counter in its body), seconds per round at the
# start and end, RSS (the _hook line).
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

ONCE = os.environ.get("RS_ONCE") == "1"
traces = [0]


class ExpectedImprovement:
    def __init__(self, model, best):
        self.model = model
        self.best = tf.Variable(best, dtype=tf.float32) if ONCE else tf.constant(best, tf.float32)

    @tf.function
    def __call__(self, x):
        traces[0] += 1
        mean = self.model(x)[:, 0]
        return tf.nn.relu(self.best - mean) + 0.01 * tf.math.reduce_std(x, axis=1)


rng = np.random.default_rng(0)


def objective(x):
    return np.sin(3 * x).sum(axis=1, keepdims=True).astype("float32")


xs = rng.random((16, 8), dtype=np.float32)
ys = objective(xs)
model = keras.Sequential(
    [keras.Input((8,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)]
)
model.compile("adam", "mse")
candidates = rng.random((4096, 8), dtype=np.float32)
acq = ExpectedImprovement(model, float(ys.min())) if ONCE else None
_hook.mark()
times = []
for _round in range(40):
    t0 = time.perf_counter()
    model.fit(xs, ys, epochs=1, batch_size=16, verbose=0)
    if ONCE:
        acq.best.assign(float(ys.min()))
    else:
        acq = ExpectedImprovement(model, float(ys.min()))
    scores = tf.concat([acq(c) for c in np.split(candidates, 8)], 0).numpy()
    pick = candidates[int(np.argmax(scores))][None]
    xs, ys = np.concatenate([xs, pick]), np.concatenate([ys, objective(pick)])
    times.append(time.perf_counter() - t0)
print(
    f"TRUTH {'one acquisition object' if ONCE else 'a new acquisition object per round'}: __call__ traced "
    f"{traces[0]} times; rounds {np.mean(times[1:6]):.3f} s -> {np.mean(times[-5:]):.3f} s"
)
