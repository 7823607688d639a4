# Source: https://github.com/tensorflow/tensorflow/issues/38561 ("Unwanted tf.function
# retracing when using variable-length inputs") and #38002: an inference loop over files
# of different lengths through a @tf.function predict step; every new length is a new
# trace (the "N out of the last N calls triggered tf.function retracing" warning).
# Truth: a trace per new length, each call that traces ~50x a traced call.
import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

model = tf.keras.Sequential(
    [
        tf.keras.Input((None, 16)),
        tf.keras.layers.Conv1D(32, 3, padding="same"),
        tf.keras.layers.GlobalAveragePooling1D(),
        tf.keras.layers.Dense(4),
    ]
)
_hook.mark()


@tf.function
def predict_step(x):
    return model(x, training=False)


rng = np.random.default_rng(0)
for _f in range(400):
    length = int(rng.integers(20, 400))  # each file has its own length
    predict_step(np.random.rand(1, length, 16).astype("float32"))
