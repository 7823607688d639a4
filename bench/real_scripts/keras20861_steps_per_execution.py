# Source: https://github.com/keras-team/keras/issues/20861 ("Progress bar showing wrong step number":
# "When `steps_per_execution` is used, the step that is showed by progress bar does not match how
# many steps were actually executed ... if ProgressBar shows 11 in actuality the model saw 20
# batches"; fix in https://github.com/keras-team/keras/pull/21422). The colab's shape: a small
# model compiled with `steps_per_execution=N`, fit on a finite dataset; Keras 3 calls the batch
# callbacks once per execution (every N steps), with the last step's index. Here an MLP on 4,000
# rows, batch 32 (125 steps an epoch), `steps_per_execution=8`, 12 epochs, a callback counting
# its batch calls and the optimizer's iterations.
# RS_SPE=1: the default, one step per execution (the twin).
# RS_REPEAT=1: the dataset `.repeat()`ed and `fit(steps_per_epoch=50)` (an epoch is 50 steps).
# Healthy in every variant. Truth: optimizer steps per epoch and batch-callback calls per epoch
# (printed by the plain run).
import os

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

SPE = int(os.environ.get("RS_SPE", "8"))
REPEAT = os.environ.get("RS_REPEAT") == "1"
rng = np.random.default_rng(20861)
x, y = rng.random((4000, 32), dtype=np.float32), rng.integers(0, 4, 4000)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(4000).batch(32)
if REPEAT:
    ds = ds.repeat()
model = keras.Sequential(
    [keras.Input((32,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(4)]
)
model.compile(
    "adam",
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    steps_per_execution=SPE,
)
calls, iters = [], []


class Count(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        calls.append(0)
        self.start = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        calls[-1] += 1

    def on_epoch_end(self, epoch, logs=None):
        iters.append(int(self.model.optimizer.iterations.numpy()) - self.start)


_hook.mark()
model.fit(ds, epochs=12, steps_per_epoch=50 if REPEAT else None, verbose=0, callbacks=[Count()])
print(
    f"TRUTH steps_per_execution={SPE} repeat={REPEAT}; optimizer steps per epoch {iters}; batch callbacks per epoch {calls}"
)
