# Source: https://github.com/keras-team/keras/issues/6187 ("LSTM with different length of
# sequences": `for _ in range(n_epochs): model.train_on_batch(s1, y1); model.train_on_batch(s2,
# y2)`, an LSTM with input_shape=(None, 3), one sequence per batch), keras#85 (fchollet: "feed
# sequences to your model one sequence at a time (batch_size=1). Then differences in sequence
# lengths would be irrelevant") and keras#4605 (lengths 4-12). Here: 300 sequences of lengths
# 5-60 (56 distinct), each its own `train_on_batch` call, 6 passes. Keras 3's train function is a
# `tf.function(reduce_retracing=True)`: after the first lengths it traces a shape with the time
# axis None, so the retraces should stop early. RS_PAD=1: sequences padded to 60 + Masking
# (keras#85's other answer), one shape.
# Truth: how many times the model was traced (a Python counter in a layer's call runs only
# while tracing), the calls, the seconds of the first and the last pass, RSS.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
from keras.layers import LSTM, Dense, Input, Masking
from keras.models import Sequential

PAD = os.environ.get("RS_PAD") == "1"
rng = np.random.default_rng(6187)
lengths = rng.integers(5, 61, 300)
seqs = [rng.random((n, 3), dtype=np.float32) for n in lengths]
ys = [keras.utils.to_categorical([int(s[:, 0].mean() > 0.5)], 2) for s in seqs]
if PAD:
    seqs = [np.pad(s, ((0, 60 - len(s)), (0, 0))) for s in seqs]

traces = [0]


class Count(keras.layers.Layer):
    def call(self, x):
        traces[0] += 1  # Python: runs once per trace, not per call
        return x


model = Sequential(
    [Input((None, 3))]
    + ([Masking(0.0)] if PAD else [])
    + [
        Count(),
        LSTM(100, return_sequences=True, activation="tanh", recurrent_activation="hard_sigmoid"),
        LSTM(100, activation="tanh", recurrent_activation="hard_sigmoid"),
        Dense(2, activation="softmax"),
    ]
)
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
_hook.mark()
n_epochs, times, calls = 6, [], 0
for _ in range(n_epochs):
    t0 = time.perf_counter()
    for s, y in zip(seqs, ys, strict=True):
        model.train_on_batch(s[None], y)
        calls += 1
    times.append(round(time.perf_counter() - t0, 2))
print(
    f"TRUTH pad={PAD}: {traces[0]} traces of the model over {calls} train_on_batch calls "
    f"({len(set(lengths))} distinct lengths); pass seconds {times}",
    file=sys.stderr,
)
