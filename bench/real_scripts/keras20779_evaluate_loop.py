# Source: https://github.com/keras-team/keras/pull/20779 ("Fix memory leaks in `model.evaluate`":
# each evaluate() made a History attached to the model and a CallbackList executor thread that
# was never shut down) and https://github.com/tensorflow/tensorflow/issues/32420's evaluate half:
# a model trained once, then `model.evaluate(x_chunk, y_chunk)` per held-out file, 300 files of
# 64 rows. Keras 3.15 has the fix. Truth (TF 2.21 / Keras 3): RSS and seconds printed plain.
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

rng = np.random.default_rng(0)
x = rng.random((4096, 40), dtype=np.float32)
y = (x[:, :20].sum(axis=1) > 10).astype("float32")
model = keras.Sequential(
    [
        keras.Input((40,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile("adam", "binary_crossentropy", metrics=["accuracy", keras.metrics.AUC()])
model.fit(x, y, epochs=5, batch_size=64, verbose=0)
_hook.mark()
files = [(rng.random((64, 40), dtype=np.float32)) for _ in range(300)]
rss, secs, accs = [], [], []
for i, xf in enumerate(files):
    t = time.perf_counter()
    loss, acc, auc = model.evaluate(xf, (xf[:, :20].sum(axis=1) > 10).astype("float32"), verbose=0)
    secs.append(time.perf_counter() - t)
    accs.append(acc)
    if i % 50 == 49:
        rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH 300 evaluate calls; RSS every 50 {rss} MiB; seconds per call first50 {np.mean(secs[1:51]):.3f} last50 {np.mean(secs[-50:]):.3f}; mean acc {np.mean(accs):.3f}"
)
