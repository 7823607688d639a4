# Source: https://github.com/tensorflow/tensorflow/issues/38561 (the fix the thread gives:
# an input_signature with None in the varying dimension). The same inference loop over
# files of different lengths as tf38561_varlen_infer_retrace.py, traced once.
# Healthy: one trace, flat RSS, flat time per call.
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


@tf.function(input_signature=[tf.TensorSpec([1, None, 16], tf.float32)])
def predict_step(x):
    return model(x, training=False)


rng = np.random.default_rng(0)
for _f in range(1500):
    length = int(rng.integers(20, 400))  # each file has its own length
    predict_step(np.random.rand(1, length, 16).astype("float32"))
