# Source: https://github.com/tensorflow/tensorflow/issues/61791 ("Memory leak when using
# tf.Model and tf.Model.fit() in a loop. clear_session() does not help"): a federated-style
# loop that builds a model, fits it, reads its weights, then calls
# tf.keras.backend.clear_session() and gc.collect() every round, printing the RSS.
import gc
import os

import numpy as np
import psutil
import tensorflow as tf

rng = np.random.default_rng(5)
x = rng.random((1024, 28, 28), dtype=np.float32)
y = rng.integers(0, 10, size=1024)
process = psutil.Process(os.getpid())

for round_ in range(25):
    model = tf.keras.Sequential(
        [
            tf.keras.Input((28, 28)),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(10),
        ]
    )
    model.compile(optimizer="sgd", loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    weights = model.get_weights()
    del model
    tf.keras.backend.clear_session()
    gc.collect()
    print(round_, process.memory_info().rss >> 20, "MiB")
