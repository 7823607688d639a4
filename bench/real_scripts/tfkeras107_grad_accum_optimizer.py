# Source: https://github.com/keras-team/tf-keras/issues/107 ("Gradient accumulation support?":
# "use larger batch sizes without exhausting memory"; Keras 3 answered it with the optimizers'
# `gradient_accumulation_steps` argument) and https://github.com/keras-team/keras/issues/18923
# (fchollet: "what you need is simply gradient accumulation"). A Keras 3 fit with
# `Adam(gradient_accumulation_steps=4)`, batch 32 (an effective batch of 128), 64 batches an
# epoch, 10 epochs: the weights change once every 4 batches (16 updates an epoch), while
# `optimizer.iterations` counts every batch. Healthy: nothing to find; the question is what
# epochwatch counts as a step. `RS_ACCUM=1`: no accumulation, batch 128 (the same effective
# batch, 16 updates an epoch).
# Truth (printed): batches, weight updates and `optimizer.iterations` per epoch.
import os

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

PLAIN_BATCH = os.environ.get("RS_ACCUM") == "1"
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.random((2048, 64), dtype=np.float32)
y = (x @ rng.standard_normal((64, 1))).astype("float32")
model = keras.Sequential(
    [keras.Input((64,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)]
)
opt = (
    keras.optimizers.Adam(1e-3) if PLAIN_BATCH else keras.optimizers.Adam(1e-3, gradient_accumulation_steps=4)
)
model.compile(opt, "mse")


class Updates(keras.callbacks.Callback):
    changes = 0

    def on_train_batch_begin(self, batch, logs=None):
        self.w = self.model.layers[0].kernel.numpy()

    def on_train_batch_end(self, batch, logs=None):
        Updates.changes += int(not np.array_equal(self.model.layers[0].kernel.numpy(), self.w))


_hook.mark()
bs = 128 if PLAIN_BATCH else 32
model.fit(x, y, epochs=10, batch_size=bs, callbacks=[Updates()], verbose=0)
print(
    f"TRUTH batch {bs}{'' if PLAIN_BATCH else ', gradient_accumulation_steps=4'}: {2048 // bs} batches an "
    f"epoch, weight updates {Updates.changes / 10:.0f} an epoch, optimizer.iterations {int(opt.iterations)} in all"
)
