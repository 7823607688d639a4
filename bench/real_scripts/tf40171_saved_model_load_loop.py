# Source: https://github.com/tensorflow/tensorflow/issues/40171 ("Memory leak when repeatedly
# loading and deleting keras models": "If a Keras model is saved using `tf.saved_model.save` and
# then repeatedly loaded with `tf.saved_model.load` and deleted with `del` it becomes apparent
# that there is a slow memory leak. `keras.backend.clear_session` does not resolve this issue"),
# and https://github.com/tensorflow/tensorflow/issues/35524 (the same with
# `tf.keras.models.load_model()` in a loop, "for our current real model the memory leak in...").
# The serving shape of both: a small Keras model exported once as a SavedModel, then a loop that
# loads it for every request, runs one inference and drops it (`del`). A Dense 1024 -> 1024 -> 10
# model (1.1M weights, 4 MiB of variables), 120 requests of a 1x1024 batch.
# RS_ONCE=1: the healthy twin, load once before the loop and serve 120 requests with it.
# RS_KERAS=1: `keras.models.load_model(path.keras)` + `model(x)` per request (tf#35524's shape).
# Truth: RSS after every 20 requests and each load's seconds (printed by the plain run).
import os
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

ONCE = os.environ.get("RS_ONCE") == "1"
KERAS = os.environ.get("RS_KERAS") == "1"
N = int(os.environ.get("RS_N", "120"))
inp = keras.Input((1024,))
out = keras.layers.Dense(10)(keras.layers.Dense(1024, activation="relu")(keras.layers.Dense(1024)(inp)))
model = keras.Model(inp, out)
work = tempfile.mkdtemp(prefix="rs_40171_")
if KERAS:
    path = os.path.join(work, "model.keras")
    model.save(path)
else:
    path = os.path.join(work, "saved")
    model.export(path, verbose=False)
del model
x = np.random.default_rng(0).random((1, 1024), dtype=np.float32)


def load():
    if KERAS:
        return keras.models.load_model(path)
    return tf.saved_model.load(path)


def infer(m):
    return m(x) if KERAS else m.serve(tf.constant(x))


_hook.mark()
rss, load_s = [], []
served = load() if ONCE else None
for i in range(N):
    t0 = time.perf_counter()
    m = served if ONCE else load()
    load_s.append(time.perf_counter() - t0)
    np.asarray(infer(m))
    if not ONCE:
        del m
    if i % 20 == 19:
        rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH {N} requests, load once={ONCE}, keras={KERAS}; RSS MiB every 20 {rss}; "
    f"load s first 10 {np.mean(load_s[:10]):.3f}, last 10 {np.mean(load_s[-10:]):.3f}"
)
