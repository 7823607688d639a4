# Source: https://www.tensorflow.org/tensorboard/debugger_v2 (the Debugger V2 guide: add
# `tf.debugging.experimental.enable_dump_debug_info(logdir, tensor_debug_mode="FULL_HEALTH",
# circular_buffer_size=-1)` at the top of the program to find where NaNs come from) and
# tensorflow/tensorflow#14993 ("Using tfdbg ... One more question, how to lower the size of dump
# files?"). The line stays in after the debugging session: the guide's MNIST MLP (784-500-10)
# trained with `fit` for 12 epochs of 94 steps, every op of every step written to the dump
# directory (FULL_HEALTH: a health summary of every tensor; `circular_buffer_size=-1`: nothing
# dropped). RS_OFF=1: the line removed (healthy twin).
# Truth: the dump directory's size after each epoch, epoch times (printed plain).
import os
import sys
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

OFF = os.environ.get("RS_OFF") == "1"
logdir = tempfile.mkdtemp(prefix="rs_tfdbg2_")
if not OFF:
    tf.debugging.experimental.enable_dump_debug_info(
        logdir, tensor_debug_mode="FULL_HEALTH", circular_buffer_size=-1
    )
rng = np.random.default_rng(14993)
x = rng.random((6000, 784), dtype=np.float32)
y = rng.integers(0, 10, 6000)
model = tf.keras.Sequential(
    [
        tf.keras.Input((784,)),
        tf.keras.layers.Dense(500, activation="relu"),
        tf.keras.layers.Dense(10),
    ]
)
model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
_hook.mark()


def du(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs) / 2**20


class Sizes(tf.keras.callbacks.Callback):
    sizes, times = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(round(time.perf_counter() - self.t0, 2))
        self.sizes.append(round(du(logdir), 1))


model.fit(x, y, epochs=12, batch_size=64, callbacks=[Sizes()], verbose=0)
print(
    f"TRUTH off={OFF}: dump dir MiB after each epoch {Sizes.sizes}; epoch s {Sizes.times}",
    file=sys.stderr,
)
