# Source: https://github.com/tensorflow/tensorflow/issues/45441 ("mixed_precision make train and
# predict very slow when only using cpu": the MNIST quickstart, "3s to train a epoch while costs
# 187s to train the same epoch using mixed_precision") and
# https://github.com/qubvel/efficientnet/issues/99 ("training become extremely slow almost 10
# times"). The quickstart's MLP (Flatten, Dense 128 relu, Dropout, Dense 10) on 28x28 inputs,
# with `keras.mixed_precision.set_global_policy("mixed_float16")` on a machine without a GPU,
# 4 epochs of 60 batches. `RS_FP32=1`: the default float32 policy. On this VM (TF 2.21, a CPU
# with AVX512 FP16/BF16 paths) mixed precision is no slower: 0.25 s an epoch against 0.28 s in
# float32, so the run is healthy here and epochwatch should stay quiet.
# Truth (printed): the policy, seconds per epoch; with PLAIN=1 and mixed precision, a float32
# model's epochs on the same data too.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

FP32 = os.environ.get("RS_FP32") == "1"
rng = np.random.default_rng(0)
x = rng.random((3840, 28, 28), dtype=np.float32)
y = rng.integers(0, 10, 3840)


def build():
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10),
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


class Times(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.t = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.t.append(round(time.perf_counter() - self.t0, 2))


if not FP32:
    keras.mixed_precision.set_global_policy("mixed_float16")
model = build()
_hook.mark()
times = Times()
model.fit(x, y, epochs=4, batch_size=64, callbacks=[times], verbose=0)
line = f"TRUTH policy {keras.mixed_precision.global_policy().name}: epochs {times.t} s"
if os.environ.get("PLAIN") == "1" and not FP32:
    keras.mixed_precision.set_global_policy("float32")
    ref = Times()
    build().fit(x, y, epochs=2, batch_size=64, callbacks=[ref], verbose=0)
    line += f"; float32: {ref.t} s"
print(line)
