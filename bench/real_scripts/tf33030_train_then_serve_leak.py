# Source: https://github.com/tensorflow/tensorflow/issues/33030 ("Memory leak on TF 2.0 with
# model.predict or/and model.fit with keras"; a comment: "I have built an API and my model is on
# the server side. Every time I call my prediction function using a simple request, the instance
# memory grows up"): a script that trains a model, then serves requests in-process with
# `model.predict`, and keeps every response in a dict keyed by request id (a result cache that
# is never evicted: the leak is the script's own, ~0.5 MiB of float32 scores per request).
# 400 requests of 256 rows (RS_REQUESTS=N for N). RS_NOFIT=1 skips the training first (the model is served untrained).
# Truth: RSS grows ~0.5 MiB per request; printed by the plain run.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

rng = np.random.default_rng(0)
x = rng.random((4096, 32), dtype=np.float32)
y = rng.integers(0, 500, 4096)
model = keras.Sequential(
    [
        keras.Input((32,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(500, activation="softmax"),
    ]
)
model.compile("adam", "sparse_categorical_crossentropy")
if os.environ.get("RS_NOFIT") != "1":
    model.fit(x, y, epochs=5, batch_size=128, verbose=0)
_hook.mark()
cache = {}
rss, secs = [], []
for request_id in range(int(os.environ.get("RS_REQUESTS", "400"))):
    batch = rng.random((256, 32), dtype=np.float32)
    t = time.perf_counter()
    cache[request_id] = model.predict(batch, verbose=0)  # 256 x 500 float32 = 0.5 MiB, kept
    secs.append(time.perf_counter() - t)
    if request_id % 50 == 49:
        rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH {len(secs)} predict calls; RSS every 50 {rss} MiB;"
    f" seconds per call first50 {np.mean(secs[1:51]):.3f} last50 {np.mean(secs[-50:]):.3f}"
)
