# Source: https://github.com/keras-team/keras/issues/20411 ("The model is traced for each
# `steps_per_execution` step (Jax backend)": compile time and memory grow with each new trace)
# and https://github.com/tensorflow/tensorflow/issues/62198 (the TF/XLA form: a compile per new
# padded length; tf62198_xla_varlen_recompile.py here). The Keras 3 JAX backend jit-compiles the
# train step for each new input shape: a `PyDataset` that pads each batch to its own longest
# sequence (20-300 tokens, as `padded_batch` does), an Embedding + Conv1D + pooling classifier,
# 6 epochs of 24 batches. `RS_BUCKET=1`: lengths padded up to 4 buckets (64/128/192/320).
# Runs with KERAS_BACKEND=jax (set here).
# Truth (printed): distinct batch shapes seen, seconds per epoch.
import os
import typing

os.environ["KERAS_BACKEND"] = "jax"
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

BUCKET = os.environ.get("RS_BUCKET") == "1"
rng = np.random.default_rng(0)
lengths = rng.integers(20, 300, 24 * 32)
shapes = set()


class Padded(keras.utils.PyDataset):
    def __len__(self):
        return 24

    def __getitem__(self, i):
        n = lengths[i * 32 : (i + 1) * 32]
        width = int(n.max())
        if BUCKET:
            width = next(b for b in (64, 128, 192, 320) if b >= width)
        x = np.zeros((32, width), "int32")
        for r, k in enumerate(n):
            x[r, :k] = rng.integers(1, 5000, k)
        shapes.add(x.shape)
        return x, (n > 150).astype("float32")

    def on_epoch_end(self):
        rng.shuffle(lengths)


model = keras.Sequential(
    [
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(5000, 64),
        keras.layers.Conv1D(64, 5, activation="relu"),
        keras.layers.GlobalMaxPooling1D(),
        keras.layers.Dense(1, activation="sigmoid"),
    ]
)
model.compile("adam", "binary_crossentropy")


class Times(keras.callbacks.Callback):
    t: typing.ClassVar[list] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        Times.t.append(round(time.perf_counter() - self.t0, 2))


_hook.mark()
model.fit(Padded(), epochs=6, callbacks=[Times()], verbose=0)
print(f"TRUTH {'bucketed' if BUCKET else 'padded per batch'}: {len(shapes)} batch shapes; epochs {Times.t} s")
