# Source: https://github.com/tensorflow/tensorflow/issues/25620 ("MirroredStrategy, dataset
# sharding, notion of keras epoch - inconsistent and confusing"): a model built under
# `tf.distribute.MirroredStrategy()` and fitted on `dataset.repeat()` with `steps_per_epoch`
# (here on this CPU-only box: one replica, /cpu:0), global batch = 64 x replicas, validation on
# a finite dataset with `validation_steps`, ModelCheckpoint(save_best_only) and a
# ReduceLROnPlateau. Truth: healthy (flat RSS, flat epochs): the hook must stay quiet.
import os
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

strategy = tf.distribute.MirroredStrategy()
BATCH = 64 * strategy.num_replicas_in_sync
rng = np.random.default_rng(4)
x = rng.random((20000, 28, 28, 1), dtype=np.float32)
y = rng.integers(0, 10, 20000)
train = (
    tf.data.Dataset.from_tensor_slices((x[:18000], y[:18000])).shuffle(4096).repeat().batch(BATCH).prefetch(2)
)
val = tf.data.Dataset.from_tensor_slices((x[18000:], y[18000:])).batch(BATCH)

with strategy.scope():
    model = tf.keras.Sequential(
        [
            tf.keras.Input((28, 28, 1)),
            tf.keras.layers.Conv2D(32, 3, activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer="adam",
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
_hook.mark()
ckpt = os.path.join(tempfile.mkdtemp(prefix="rs_25620_"), "best.weights.h5")
rss, times = [], []


class T(tf.keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, e, logs=None):
        times.append(time.perf_counter() - self.t)
        with open("/proc/self/statm") as f:
            rss.append(round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20))


model.fit(
    train,
    epochs=15,
    steps_per_epoch=100,
    validation_data=val,
    validation_steps=len(y[18000:]) // BATCH,
    callbacks=[
        tf.keras.callbacks.ModelCheckpoint(ckpt, save_best_only=True, save_weights_only=True),
        tf.keras.callbacks.ReduceLROnPlateau(patience=2, factor=0.5),
        T(),
    ],
    verbose=0,
)
tag = "TRUTH" if os.environ.get("PLAIN") == "1" else "hooked:"
print(
    f"{tag} replicas {strategy.num_replicas_in_sync}: epoch s {[round(v, 2) for v in times]}; RSS per epoch {rss} MiB"
)
