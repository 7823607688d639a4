# Source: https://github.com/scope-ml/scope-ml/pull/187 ("Replace model.predict in inference
# loop to avoid memory leak"): the fix, model(features, training=False) over feature files.
# Healthy: flat RSS, flat time per call.
import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

model = tf.keras.Sequential(
    [
        tf.keras.Input((40,)),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(1, activation="sigmoid"),
    ]
)
_hook.mark()
preds = []
for _f in range(600):  # one "feature file" of 512 rows each
    features = np.random.rand(512, 40).astype("float32")
    preds.append(float(tf.reduce_mean(model(features, training=False))))
print("mean score", sum(preds) / len(preds))
