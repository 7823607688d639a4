# Source: https://github.com/tensorflow/tensorflow/issues/38561-like serving loops that wrap
# Python preprocessing in `tf.py_function` inside a `@tf.function` (users' "tf.function retracing
# on every request" and "py_function in serving is slow" reports, e.g.
# https://github.com/tensorflow/tensorflow/issues/34346): each request is a tokenised text of
# its own length; `serve(tokens)` runs `tf.py_function(normalise, [tokens], tf.float32)`, then
# the model. No `input_signature`: a new length is a new trace. 900 requests, lengths 20-200.
# RS_SIG=1: `input_signature=[tf.TensorSpec([None], tf.int32)]` (the healthy twin: one trace).
# RS_EAGER=1: no tf.function at all, `model(np_array)` per request with numpy inputs of changing
# shapes (Keras 3 runs it eagerly: no traces, but each call is slower).
# Truth: traces and seconds per request (printed by the plain run).
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

SIG = os.environ.get("RS_SIG") == "1"
EAGER = os.environ.get("RS_EAGER") == "1"
vocab = 5000
model = keras.Sequential(
    [
        keras.Input((None,)),
        keras.layers.Embedding(vocab, 64),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(3, activation="softmax"),
    ]
)
traces = [0]


def normalise(tokens):
    t = tokens.numpy()
    return np.clip(t, 0, vocab - 1).astype("float32")


def _serve(tokens):
    traces[0] += 1
    feats = tf.py_function(normalise, [tokens], tf.float32)
    feats.set_shape([None])
    return model(feats[None, :], training=False)


serve = tf.function(_serve, input_signature=[tf.TensorSpec([None], tf.int32)] if SIG else None)
rng = np.random.default_rng(0)
_hook.mark()
secs, out = [], []
for _i in range(900):
    tokens = rng.integers(0, vocab + 50, int(rng.integers(20, 201))).astype("int32")
    t = time.perf_counter()
    if EAGER:
        probs = model(np.clip(tokens, 0, vocab - 1)[None, :].astype("float32"), training=False)
    else:
        probs = serve(tf.constant(tokens))
    out.append(int(np.argmax(probs)))
    secs.append(time.perf_counter() - t)
print(
    f"TRUTH {len(secs)} requests, {traces[0]} traces; ms per request first100 {1000 * np.mean(secs[:100]):.1f}"
    f" last100 {1000 * np.mean(secs[-100:]):.1f}"
)
