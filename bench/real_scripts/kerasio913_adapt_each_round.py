# Source: the retracing warning the Keras preprocessing guide printed (keras-io#913: "5 out of the
# last 1567 calls to <function PreprocessingLayer.make_adapt_function.<locals>.adapt_step>
# triggered tf.function retracing") and tf#44448 / keras#14915 (TextVectorization memory and
# time): the shape is an online / incremental text classifier that gets a new chunk of texts each
# round, calls `vectorizer.adapt(chunk)` again on it (vocabulary re-learned), rebuilds its
# `tf.data` pipeline (`map(vectorizer)`), and trains its model one more epoch with `fit`. 24
# rounds of 2,000 texts (40 words of a 5,000-word Zipf vocabulary), vectorizer outside the model
# (the guide's advice), an Embedding-GlobalAveragePooling classifier.
# RS_ONCE=1: adapt once on the first chunk, the pipeline built once per round all the same.
# RS_NORM=1: the numeric twin: a `Normalization` layer inside the model, `adapt()` on each new
# chunk of 8,192 x 64 floats before each round's fit.
# Truth: adapt seconds per round, RSS per round, fit epochs.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

ONCE = os.environ.get("RS_ONCE") == "1"
NORM = os.environ.get("RS_NORM") == "1"
rng = np.random.default_rng(913)
words = np.array([f"w{i}" for i in range(5000)])
p = 1.0 / np.arange(1, 5001)
p /= p.sum()


def chunk(n=2000):
    idx = rng.choice(5000, size=(n, 40), p=p)
    return np.array([" ".join(words[r]) for r in idx]), (idx[:, :5].mean(axis=1) < 60).astype("float32")


adapt_s, rss = [], []
if NORM:
    norm = keras.layers.Normalization()
    model = keras.Sequential(
        [keras.Input((64,)), norm, keras.layers.Dense(128, activation="relu"), keras.layers.Dense(1)]
    )
    _hook.mark()
    for r in range(24):
        xr = rng.normal(r * 0.1, 1.0, (8192, 64)).astype("float32")
        yr = (xr[:, 0] > r * 0.1).astype("float32")
        t0 = time.perf_counter()
        norm.adapt(xr)
        adapt_s.append(round(time.perf_counter() - t0, 2))
        if r == 0:
            model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
        model.fit(xr, yr, batch_size=64, epochs=1, verbose=0)
        rss.append(round(_hook._rss_mib()))
else:
    vec = keras.layers.TextVectorization(max_tokens=5000, output_sequence_length=40)
    model = keras.Sequential(
        [
            keras.Input((40,), dtype="int64"),
            keras.layers.Embedding(5000, 64),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    _hook.mark()
    for r in range(24):
        texts, labels = chunk()
        t0 = time.perf_counter()
        if r == 0 or not ONCE:
            vec.adapt(texts, batch_size=256)
        adapt_s.append(round(time.perf_counter() - t0, 2))
        ds = (
            tf.data.Dataset.from_tensor_slices((texts, labels))
            .batch(64)
            .map(lambda t, y: (vec(t), y))
            .prefetch(2)
        )
        model.fit(ds, epochs=1, verbose=0)
        rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH once={ONCE} norm={NORM}: adapt s per round {adapt_s}; RSS MiB after each round {rss}",
    file=sys.stderr,
)
