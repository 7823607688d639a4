# Source: https://github.com/keras-team/keras/issues/13118 ("Repeatedly calling model.predict(...)
# results in memory leak") and https://github.com/tensorflow/tensorflow/issues/33030 (a server
# that predicts per request; "Using tf.keras.backend.clear_session() didn't solve the issue": the
# step users try is `clear_session()`, with `gc.collect()`, after each prediction). A serving
# loop: a model trained once (3 epochs), then 300 requests of 1-64 rows each, `model.predict(batch)`
# followed by `clear_session()` + `gc.collect()`. `RS_PLAIN=1`: the same requests without
# clear_session/gc (the loop as first written).
# Truth (printed): request latency (median of the first and last 50), RSS (the _hook line).
import gc
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

CLEAR = os.environ.get("RS_PLAIN") != "1"
rng = np.random.default_rng(0)
x = rng.random((4096, 32), dtype=np.float32)
y = (x.sum(axis=1) > 16).astype("float32")
model = keras.Sequential(
    [
        keras.Input((32,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile("adam", "binary_crossentropy")
model.fit(x, y, epochs=3, batch_size=64, verbose=0)
_hook.mark()
lat = []
for _req in range(300):
    batch = rng.random((int(rng.integers(1, 65)), 32), dtype=np.float32)
    t0 = time.perf_counter()
    model.predict(batch, verbose=0)
    if CLEAR:
        keras.backend.clear_session()
        gc.collect()
    lat.append(time.perf_counter() - t0)
print(
    f"TRUTH {'clear_session + gc after each request' if CLEAR else 'plain predict loop'}: request "
    f"{np.median(lat[:50]) * 1e3:.1f} ms -> {np.median(lat[-50:]) * 1e3:.1f} ms (median, first/last 50)"
)
