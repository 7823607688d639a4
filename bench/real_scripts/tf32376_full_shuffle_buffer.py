# Source: https://github.com/tensorflow/tensorflow/issues/32376 ("Shuffle function on tf.data
# fills up RAM memory"): `shuffle(buffer_size=<number of elements>)` after the decoding map, so
# the buffer holds the whole decoded data set (here 8,000 64x64x3 images decoded to float32:
# 375 MiB) and is filled before the first step of every epoch. Truth: the time from `fit` to
# its first step (the buffer's fill), the peak RSS (ru_maxrss) and the RSS at exit; a healthy
# run otherwise (5 epochs). The hook must not add a second fill or a second buffer.
import os
import resource
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

N = 8000
rng = np.random.default_rng(10)
images = rng.integers(0, 255, (N, 64, 64, 3), dtype=np.uint8)
labels = rng.integers(0, 10, N)


def decode(img, label):
    img = tf.image.convert_image_dtype(img, tf.float32)
    return tf.image.per_image_standardization(img), label


ds = (
    tf.data.Dataset.from_tensor_slices((images, labels))
    .map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    .shuffle(buffer_size=N)
    .batch(64)
    .prefetch(tf.data.AUTOTUNE)
)
model = tf.keras.Sequential(
    [
        tf.keras.Input((64, 64, 3)),
        tf.keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(10),
    ]
)
model.compile("adam", tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
_hook.mark()
first_step, rss = [], []


class FirstStep(tf.keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if not first_step:
            first_step.append(time.perf_counter() - t0)

    def on_epoch_end(self, epoch, logs=None):
        with open("/proc/self/statm") as f:
            rss.append(round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20))


t0 = time.perf_counter()
model.fit(ds, epochs=int(os.environ.get("RS_EPOCHS", "5")), verbose=0, callbacks=[FirstStep()])
total = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
tag = "TRUTH" if os.environ.get("PLAIN") == "1" else "hooked:"
print(
    f"{tag} fit() to first step {first_step[0]:.2f} s, fit {total:.1f} s, peak RSS {peak:.0f} MiB, RSS per epoch {rss} MiB"
)
