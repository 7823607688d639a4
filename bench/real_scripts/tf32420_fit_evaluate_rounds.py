# Source: https://github.com/tensorflow/tensorflow/issues/32420 ("TF2.0 - Multiple calls to
# Keras .fit and .evaluate makes RAM explode and is 25x slower"): one small model, the same
# numpy data, then rounds of `model.fit(x, y, epochs=1)` followed by `model.evaluate(x, y)`
# (the memory_profiler loop). Synthetic data of the kind (dense features).
# Truth (TF 2.21 / Keras 3): measured plain; one model object, fitted 40 times.
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

x = np.random.rand(2000, 100).astype("float32")
y = np.random.randint(0, 2, (2000, 1)).astype("float32")
model = keras.Sequential(
    [
        keras.Input((100,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
_hook.mark()
times = []
for i in range(40):
    t = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    times.append(time.perf_counter() - t)
    if i % 10 == 0:
        print("round", i, "loss", round(loss, 4), "secs", round(times[-1], 3))
print(f"TRUTH rounds first5 {np.mean(times[1:6]):.3f}s last5 {np.mean(times[-5:]):.3f}s")
