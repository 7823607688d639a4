# Source: https://github.com/larq/zoo/issues/258 ("The usage of data.cache() causes the run out of
# memory": "I check the code and find it will cache both the train_data and the validation_data,
# and I think this is the reason why my memory is exhausted"; the answer: caching ImageNet in RAM
# needs the RAM of four GPU hosts). The zoo's pipeline: `dataset.map(preprocess).cache()
# .shuffle(...).map(augment).batch(...).prefetch(...)` for both splits, fed to `model.fit`.
# Here: 3,000 uint8 64x64x3 images (a tenth of a real split's side), decoded to float32 in the map
# before the cache (48 KiB each: 141 MiB of cache for train, 24 MiB for validation), a random flip
# after it, a small conv net, 10 epochs of 47 steps. The cache fills during epoch 1 (train) and
# its first validation pass, then stays: growth that stops by design (a cache, not a leak).
# RS_NOCACHE=1: the twin without `.cache()` (decodes each epoch; flat).
# RS_SPE=N: the training set `.repeat()`ed and `fit(steps_per_epoch=N)` (as with
# tf.distribute or TPU recipes): with N=8 the cache fills over the first ~6 epochs, then stays
# (RS_EPOCHS defaults to 24 then).
# Truth: RSS at each epoch's end (printed by the plain run).
import os

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

CACHE = os.environ.get("RS_NOCACHE") != "1"
SPE = int(os.environ.get("RS_SPE", "0")) or None
EPOCHS = int(os.environ.get("RS_EPOCHS", "24" if SPE else "10"))
rng = np.random.default_rng(258)
x = rng.integers(0, 256, (3000, 64, 64, 3), dtype=np.uint8)
y = rng.integers(0, 10, 3000)
xv, yv = x[:500], y[:500]


def preprocess(img, label):
    img = tf.image.resize(tf.cast(img, tf.float32) / 255.0, (64, 64))
    return (img - 0.5) * 2.0, label


def augment(img, label):
    return tf.image.random_flip_left_right(img), label


def pipeline(xs, ys, train):
    ds = tf.data.Dataset.from_tensor_slices((xs, ys)).map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
    if CACHE:
        ds = ds.cache()
    if train:
        ds = ds.shuffle(1000).map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        if SPE:
            ds = ds.repeat()
    return ds.batch(64).prefetch(tf.data.AUTOTUNE)


model = keras.Sequential(
    [
        keras.Input((64, 64, 3)),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ]
)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
rss = []


class Rss(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        rss.append(round(_hook._rss_mib()))


_hook.mark()
model.fit(
    pipeline(x, y, True),
    validation_data=pipeline(xv, yv, False),
    epochs=EPOCHS,
    steps_per_epoch=SPE,
    verbose=0,
    callbacks=[Rss()],
)
print(f"TRUTH cache={CACHE}, steps_per_epoch={SPE}; RSS MiB at each epoch's end {rss}")
