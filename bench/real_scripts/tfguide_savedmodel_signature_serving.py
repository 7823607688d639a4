# Source: TensorFlow's guide "Using the SavedModel format" (tensorflow/docs
# site/en/guide/saved_model.ipynb: `loaded = tf.saved_model.load(path); infer =
# loaded.signatures["serving_default"]; infer(tf.constant(x))`) and the serving loops users post
# with it (tensorflow#40171's reload-per-request loop, here done right): the model is exported
# once (`model.export(path)`, Keras 3), loaded ONCE, and a loop answers 600 requests of 1-8
# rows each through the concrete serving signature (batch axis None: one graph for every
# size, no retracing, nothing kept). Healthy: the tool should stay quiet.
# RS_KEEP=1: each response is also appended to a list with its request (a request log kept
# in memory, 600 x ~4 KiB: small; still flat enough to be left alone).
# Truth: RSS after 100 requests and at the end, ms per request first and last 100.
import os
import sys
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

rng = np.random.default_rng(40171)
model = keras.Sequential(
    [
        keras.Input((128,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ]
)
path = os.path.join(tempfile.mkdtemp(prefix="rs_sig_"), "export")
model.export(path, verbose=False)
loaded = tf.saved_model.load(path)
infer = loaded.signatures["serving_default"]
_hook.mark()
KEEP = os.environ.get("RS_KEEP") == "1"
log, times, rss = [], [], []
for i in range(600):
    x = rng.standard_normal((int(rng.integers(1, 9)), 128)).astype("float32")
    t0 = time.perf_counter()
    out = infer(tf.constant(x))
    probs = next(iter(out.values())).numpy()
    times.append(time.perf_counter() - t0)
    if KEEP:
        log.append((x, probs))
    if i in (99, 599):
        with open("/proc/self/statm") as f:
            rss.append(int(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20))
print(
    f"TRUTH keep={KEEP}: RSS after 100 requests {rss[0]} MiB, after 600 {rss[1]} MiB; ms per request "
    f"{1e3 * np.median(times[:100]):.2f} (first 100) -> {1e3 * np.median(times[-100:]):.2f} (last 100)",
    file=sys.stderr,
)
