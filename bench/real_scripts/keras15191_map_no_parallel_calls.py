# Source: https://github.com/keras-team/keras/issues/15191 ("Performance issues in the program":
# keras/layers/preprocessing/benchmarks/image_preproc_benchmark.py's `ds = ds.map(img_augmentation)`
# "was called without num_parallel_calls ... it will significant lower your programs"), one of
# DLPerf's ~200 such reports (tensorflow/cloud#369, EscVM/Efficient-CapsNet#11, cgm-ml#408:
# "GPU utilization 46.9%" until `num_parallel_calls` was added). A Keras fit on
# `from_tensor_slices(images).map(img_augmentation).batch(32)`, the map pure TF ops (resize,
# random crop, flip, brightness, contrast) with no num_parallel_calls and no prefetch, so one
# thread decodes while the step waits. The model is small (the benchmark's point).
# RS_FIX=parallel: `map(..., num_parallel_calls=AUTOTUNE)` + `prefetch(AUTOTUNE)` (the issue's
# answer; 2 CPUs here, so it can only do so much). RS_FIX=cache: the deterministic resize
# before a `.cache()`, only the random ops after it, then parallel + prefetch.
# Truth: one epoch's time iterating the dataset alone against the fit's epoch time. Measured
# here (2 CPUs, TF 2.21 / Keras 3.15): the serial map takes 0.64 s an epoch alone and a fit
# epoch 0.67 s, but with AUTOTUNE + prefetch (map 0.21 s) the fit epoch is still 0.61 s: Keras
# 3 pulls the batches through a distributed dataset that prefetches, so the map overlaps the
# steps, and on 2 CPUs the steps are the bound. Not input-bound: quiet is right.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

FIX = os.environ.get("RS_FIX", "")
rng = np.random.default_rng(15191)
images = rng.integers(0, 255, (3000, 64, 64, 3), dtype=np.uint8)
labels = rng.integers(0, 10, 3000)
AUTOTUNE = tf.data.AUTOTUNE


def resize(img, lab):
    return tf.image.resize(tf.cast(img, tf.float32) / 255.0, (160, 160)), lab


def img_augmentation(img, lab):
    img = tf.image.random_crop(img, (144, 144, 3))
    img = tf.image.random_flip_left_right(img)
    img = tf.image.random_brightness(img, 0.2)
    img = tf.image.random_contrast(img, 0.8, 1.2)
    return img, lab


ds = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(3000)
if FIX == "cache":
    ds = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .map(resize, num_parallel_calls=AUTOTUNE)
        .cache()
        .shuffle(3000)
        .map(img_augmentation, num_parallel_calls=AUTOTUNE)
        .batch(32)
        .prefetch(AUTOTUNE)
    )
elif FIX == "parallel":
    ds = (
        ds.map(lambda img, label: img_augmentation(*resize(img, label)), num_parallel_calls=AUTOTUNE)
        .batch(32)
        .prefetch(AUTOTUNE)
    )
else:
    ds = ds.map(lambda img, label: img_augmentation(*resize(img, label))).batch(32)
model = keras.Sequential(
    [
        keras.Input((144, 144, 3)),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ]
)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
_hook.mark()
h = model.fit(ds, epochs=6, verbose=0, callbacks=[keras.callbacks.LambdaCallback()])
t0 = time.perf_counter()
for _ in ds:
    pass
alone = time.perf_counter() - t0
t0 = time.perf_counter()
model.fit(ds, epochs=1, verbose=0)
one = time.perf_counter() - t0
print(
    f"TRUTH fix={FIX or 'none'}: iterating the dataset alone {alone:.2f} s an epoch; a fit epoch {one:.2f} s "
    f"(the input alone is {100 * alone / one:.0f}% of it)",
    file=sys.stderr,
)
