# Source: https://github.com/tensorflow/tensorflow/issues/60262 ("Collected Tensorflow profiles
# are not recognized in Tensorboard"): TF's beginner quickstart (Flatten -> Dense(128) ->
# Dropout -> Dense(10) on MNIST) with the TensorBoard profiling guide's callback,
# `TensorBoard(log_dir="logs/fit/" + datetime, histogram_freq=1, profile_batch=(10, 20))`.
# Synthetic MNIST-shaped data, 15 epochs, run in a temp working directory. Truth: the log
# directory gets the profile once (batches 10-20) and a few KiB of histograms an epoch: disk
# growth that can never matter; the run is healthy. `RS_LATE=1`: the profiled batches are in
# epoch 8 (profile_batch=(520, 540)), where a profiler of the hook's own may be running.
import datetime
import os
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

os.chdir(tempfile.mkdtemp(prefix="rs_60262_"))
rng = np.random.default_rng(6)
x_train = rng.random((4000, 28, 28), dtype=np.float32)
y_train = rng.integers(0, 10, 4000)
x_test, y_test = x_train[:500], y_train[:500]

model = tf.keras.models.Sequential(
    [
        tf.keras.layers.Input((28, 28)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dropout(0.2),
        tf.keras.layers.Dense(10),
    ]
)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])
_hook.mark()
log_dir = "logs/fit/" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
profile = (520, 540) if os.environ.get("RS_LATE") == "1" else (10, 20)
tb = tf.keras.callbacks.TensorBoard(log_dir=log_dir, histogram_freq=1, profile_batch=profile)
model.fit(x_train, y_train, epochs=15, validation_data=(x_test, y_test), callbacks=[tb], verbose=0)


def tree(path):
    files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    return len(files), sum(os.path.getsize(f) for f in files) / 2**20, [f for f in files if "xplane" in f]


n, mib, xplanes = tree("logs")
print(
    f"{'TRUTH' if os.environ.get('PLAIN') == '1' else 'hooked:'} logs: {n} files, {mib:.2f} MiB;"
    f" profiles written {len(xplanes)} (profile_batch={profile})"
)
