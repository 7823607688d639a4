# Source: https://github.com/tensorflow/tensorflow/issues/73864 ("memory crash when putting
# model.fit within a for loop", TF 2.17): `for r in range(0, 10000): model.compile(optimizer=
# 'sgd', loss=SparseCategoricalCrossentropy(from_logits=True)); model.fit(data, epochs=1)`:
# one model, compiled again before every one-epoch fit on the same tf.data dataset (a reply:
# "Try removing the model.compile from the loop"). Synthetic MNIST-shaped data, 60 rounds.
# Truth (TF 2.21 / Keras 3): RSS and seconds per round printed by the plain run.
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

x = np.random.rand(2048, 28, 28).astype("float32")
y = np.random.randint(0, 10, 2048)
data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
model = tf.keras.Sequential(
    [
        tf.keras.Input((28, 28)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10),
    ]
)
_hook.mark()
rss, secs = [], []
for _r in range(60):
    t = time.perf_counter()
    model.compile(optimizer="sgd", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data, epochs=1, verbose=0)
    secs.append(time.perf_counter() - t)
    rss.append(_hook._rss_mib())
print(
    f"TRUTH RSS every 10th round {[round(v) for v in rss[::10]] + [round(rss[-1])]} MiB (slope {np.polyfit(np.arange(5, 60), rss[5:], 1)[0]:.2f} MiB/round over rounds 5-60); seconds first5 {np.mean(secs[1:6]):.3f} last5 {np.mean(secs[-5:]):.3f}"
)
