# Source: https://github.com/tensorflow/tensorflow/issues/53620 ("py_function is slower in TF2.7
# (and 2.6) compared to TF2.5"): "In my training code I'm using tf.data.Dataset.map with a
# tf.py_function within it ... I wrapped the opening of the image on disk within a
# tf.py_function and opened it using Pillow and numpy". Here: file names through
# `map(tf.py_function(load))`, no num_parallel_calls, no prefetch, then batch and a small CNN.
# `load` np.load's a 64x64x3 file and sleeps 2 ms for the decode/disk latency (Pillow's decode
# releases the GIL like a sleep does). Truth: plain, the epoch against the same fit on the
# batches already in memory (printed as the share of time waiting for input).
# RS_PARALLEL: the "fixed" twins, `map(..., num_parallel_calls=N)` and `.prefetch(AUTOTUNE)`:
# RS_PARALLEL=autotune (AUTOTUNE runs 2 calls on a 2-CPU box) or a number (16). Both still wait
# about half the time here: py_function holds the GIL; the hook must say so, not be quiet.
import os
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf
from tensorflow import keras

PARALLEL = os.environ.get("RS_PARALLEL", "")  # "", "autotune" or a number of parallel calls
N, EPOCHS = 960, 8
root = tempfile.mkdtemp(prefix="rs_pyfunc_")
files = []
for i in range(N):
    p = os.path.join(root, f"img{i:05d}.npy")
    np.save(p, np.random.randint(0, 255, (64, 64, 3), dtype=np.uint8))
    files.append(p)
labels = np.random.randint(0, 10, N)


def load(path):
    img = np.load(path.numpy().decode())
    time.sleep(0.002)
    return (img.astype(np.float32) / 255.0,)


def tf_load(path, label):
    (img,) = tf.py_function(load, [path], [tf.float32])
    img.set_shape((64, 64, 3))
    return img, label


ds = tf.data.Dataset.from_tensor_slices((files, labels)).shuffle(N)
if PARALLEL:
    calls = tf.data.AUTOTUNE if PARALLEL == "autotune" else int(PARALLEL)
    ds = ds.map(tf_load, num_parallel_calls=calls).batch(32).prefetch(tf.data.AUTOTUNE)
else:
    ds = ds.map(tf_load).batch(32)

model = keras.Sequential(
    [
        keras.Input((64, 64, 3)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ]
)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
_hook.mark()


class T(keras.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None):
        self.t = time.perf_counter()

    def on_epoch_end(self, e, logs=None):
        times.append(time.perf_counter() - self.t)


times = []
model.fit(ds, epochs=EPOCHS, callbacks=[T()], verbose=2)
if os.environ.get("PLAIN") == "1":
    mem = [b for b in ds]  # the same batches, in memory: the compute alone
    mem_ds = tf.data.Dataset.from_generator(lambda: iter(mem), output_signature=ds.element_spec)
    t = time.perf_counter()
    model.fit(
        tf.data.Dataset.from_tensor_slices(
            (np.concatenate([b[0] for b in mem]), np.concatenate([b[1] for b in mem]))
        )
        .batch(32)
        .cache(),
        epochs=3,
        verbose=0,
    )
    times_mem = []
    for _ in range(3):
        t = time.perf_counter()
        model.fit(
            tf.data.Dataset.from_tensor_slices(
                (np.concatenate([b[0] for b in mem]), np.concatenate([b[1] for b in mem]))
            ).batch(32),
            epochs=1,
            verbose=0,
        )
        times_mem.append(time.perf_counter() - t)
    steady = float(np.median(times[1:]))
    comp = float(np.median(times_mem))
    print(
        f"TRUTH epochs {[round(x, 2) for x in times]} s; compute alone {comp:.2f} s/epoch; waiting share ~{100 * max(0.0, 1 - comp / steady):.0f}%"
    )
