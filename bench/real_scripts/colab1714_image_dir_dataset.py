# Source: https://github.com/googlecolab/colabtools/issues/1714 ("Slow training speed in GPU if
# tensorflow flow from directory is used instead of directly loading to RAM") and
# https://github.com/mrdbourke/tensorflow-deep-learning/issues/368 (moving a course from
# ImageDataGenerator to `image_dataset_from_directory` "will greatly save time"; the tutorial's
# next step is `.cache().prefetch(AUTOTUNE)`). 1,600 JPEGs (96x96, two classes) written to a temp
# directory, read with `keras.utils.image_dataset_from_directory(..., image_size=(96, 96),
# batch_size=32)` as is (decoded and resized every epoch, no cache, no prefetch), into a small
# CNN, 6 epochs. `RS_CACHE=1`: `.cache().prefetch(AUTOTUNE)` after it (the tutorial's fix).
# Truth (printed): seconds per epoch of fit, and of one pass over the dataset alone (PLAIN=1).
import os
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

CACHE = os.environ.get("RS_CACHE") == "1"
d = tempfile.mkdtemp(prefix="rs_1714_")
rng = np.random.default_rng(0)
for c in ("cats", "dogs"):
    os.makedirs(os.path.join(d, c))
    for i in range(800):
        img = (rng.random((96, 96, 3)) * (90 if c == "cats" else 160)).astype("uint8")
        tf.io.write_file(os.path.join(d, c, f"{i:04d}.jpg"), tf.io.encode_jpeg(img, quality=90))
ds = keras.utils.image_dataset_from_directory(d, image_size=(96, 96), batch_size=32, seed=1, verbose=False)
if CACHE:
    ds = ds.cache().prefetch(tf.data.AUTOTUNE)
model = keras.Sequential(
    [
        keras.Input((96, 96, 3)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
_hook.mark()
t0 = time.perf_counter()
model.fit(ds, epochs=6, verbose=0)
line = f"TRUTH {'cached' if CACHE else 'from disk each epoch'}: fit {(time.perf_counter() - t0) / 6:.2f} s an epoch"
if os.environ.get("PLAIN") == "1":
    t0 = time.perf_counter()
    for _ in ds:
        pass
    line += f"; the dataset alone {time.perf_counter() - t0:.2f} s a pass"
print(line)
