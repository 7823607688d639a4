# Source: https://github.com/tensorflow/tensorflow/issues/56674 ("Tensorflow predict() is accurate
# on single sample but giving strange results when predicting on dataset": the user scores a
# test `tf.data` dataset with `for ... in dataset: prediction = model.predict(...)`; the
# maintainer: "model.predict is not intended to use inside the loop or to iterate data and use
# it. It is intended for batch processing and large number of inputs"), ipazc/mtcnn#107 ("when
# using model.predict() on small batches it is very slow") and AllenInstitute/deepinterpolation#78
# ("move to predict_on_batch"). A batch-scoring job, no training: a trained classifier (built
# and compiled here, weights as they are) scores 16,000 rows of 100 features from a
# `tf.data.Dataset.from_tensor_slices(x).batch(64)`, one `model.predict(xb, verbose=0)` per batch
# of 64 (250 calls), the outputs concatenated.
# RS_FIXED=1: `model.predict(dataset)` once (Keras iterates the batches itself).
# RS_CALL=1: `model(xb, training=False)` per batch (the maintainers' advice for small inputs).
# Truth: wall time of the scoring and ms per batch (printed plain).
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

FIXED = os.environ.get("RS_FIXED") == "1"
CALL = os.environ.get("RS_CALL") == "1"
rng = np.random.default_rng(56674)
x = rng.standard_normal((16000, 100)).astype(np.float32)
model = keras.Sequential(
    [
        keras.Input((100,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(5, activation="softmax"),
    ]
)
model.compile("adam", "sparse_categorical_crossentropy")
_hook.mark()
dataset = tf.data.Dataset.from_tensor_slices(x).batch(64)
t0 = time.perf_counter()
if FIXED:
    preds = model.predict(dataset, verbose=0)
    calls = 1
else:
    out = []
    for xb in dataset:
        out.append(np.asarray(model(xb, training=False)) if CALL else model.predict(xb, verbose=0))
    preds = np.concatenate(out)
    calls = len(out)
dt = time.perf_counter() - t0
print(
    f"TRUTH fixed={FIXED} call={CALL}: {preds.shape[0]} rows scored in {dt:.2f} s, {calls} calls, "
    f"{1000 * dt / 250:.1f} ms per 64-row batch; RSS {_hook._rss_mib():.0f} MiB",
    file=sys.stderr,
)
