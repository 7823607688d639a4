# Source: https://github.com/tensorflow/tensorflow/issues/46012 ("tf.function retracing"): in a
# loop, a new `Sequential([Input(1000), Dense(1, sigmoid)])` is built, compiled, fitted on one
# sample (batch_size=1, epochs=100) and asked `model.predict(X)`; from the 5th model TF 2.4
# printed "5 out of the last 5 calls to <function Model.make_predict_function.<locals>.
# predict_function> triggered tf.function retracing" (each model's predict traced anew: new
# functions, not a retrace of one). The exact loop, 10 models instead of 6.
# Truth (TF 2.21 / Keras 3): RSS per model printed by the plain run.
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow.keras import Input, Sequential
from tensorflow.keras.layers import Dense

X = np.random.uniform(-1, 1, size=(1, 1000))
y = np.array([[0.7974]])
_hook.mark()
rss, secs = [], []
for _ in range(10):
    t = time.perf_counter()
    model = Sequential([Input(shape=(1000,)), Dense(1, activation="sigmoid")])
    model.compile(loss="mse", optimizer="adam")
    model.fit(X, y, batch_size=1, epochs=100, verbose=0)
    print(model.predict(X, verbose=0))
    secs.append(time.perf_counter() - t)
    rss.append(round(_hook._rss_mib()))
print(f"TRUTH RSS after each model {rss} MiB; seconds per model {[round(s, 2) for s in secs]}")
