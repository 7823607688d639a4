# Source: https://github.com/tensorflow/tensorflow/issues/40261 ("model.predict is much slower on
# TF 2.1+"; the maintainer: predict "is a top-level API designed for batch-predicting outside of
# any loops ... a 300x difference in the constant overheads", call the model instead) and
# ipazc/mtcnn#107. An online-learning loop: samples arrive one at a time from a stream; each is
# scored with `model.predict(x[None], verbose=0)` (to act on it), buffered, and every 32 samples
# a `@tf.function` GradientTape step trains on the buffer. No tf.data on the training side, no
# hook.epoch. A 20-64-64-1 regressor, 3,200 samples (100 updates).
# RS_CALL=1: `model(x[None], training=False)` instead of predict (the maintainer's advice).
# Truth: time in predict vs in the training steps, updates, RSS.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

CALL = os.environ.get("RS_CALL") == "1"
N = int(os.environ.get("RS_N", "3200"))
rng = np.random.default_rng(40261)
w_true = rng.standard_normal(20).astype(np.float32)
model = tf.keras.Sequential(
    [
        tf.keras.Input((20,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(1),
    ]
)
_hook.mark()
opt = tf.keras.optimizers.Adam(1e-3)


@tf.function
def train_step(xb, yb):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(xb, training=True)[:, 0] - yb) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    return loss


buf_x, buf_y, t_pred, t_train, rss = [], [], 0.0, 0.0, []
for i in range(N):
    x = rng.standard_normal(20).astype(np.float32)
    y = float(x @ w_true)
    t0 = time.perf_counter()
    p = model(x[None], training=False) if CALL else model.predict(x[None], verbose=0)
    _act = float(np.asarray(p)[0, 0])
    t_pred += time.perf_counter() - t0
    buf_x.append(x)
    buf_y.append(y)
    if len(buf_x) == 32:
        t0 = time.perf_counter()
        train_step(np.stack(buf_x), np.array(buf_y, np.float32))
        t_train += time.perf_counter() - t0
        buf_x, buf_y = [], []
    if i % 800 == 799:
        rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH call={CALL}: {N} samples, {int(opt.iterations)} updates; predict {t_pred:.1f} s "
    f"({1000 * t_pred / N:.1f} ms each), train steps {t_train:.1f} s; RSS {rss} MiB",
    file=sys.stderr,
)
