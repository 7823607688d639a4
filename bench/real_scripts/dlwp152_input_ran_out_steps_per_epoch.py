# Source: https://github.com/fchollet/deep-learning-with-python-notebooks/issues/152 (listing
# 5.14: `steps_per_epoch=100` computed for batch 20 while the generator gives batches of 32;
# "63/100 ... WARNING: Your input ran out of data; interrupting training"),
# https://github.com/tensorflow/tensorflow/issues/64476 and
# https://github.com/keras-team/keras-io/issues/285 (the same warning). A `tf.data` pipeline
# without `.repeat()` and a `steps_per_epoch` larger than the data holds: the
# dataset holds 100 batches, `fit(ds, epochs=12, steps_per_epoch=150)`: Keras 3.15 warns once
# and ends every epoch where the data ends (100 steps), so the fit takes 1,200 of the 1,800
# steps planned, as a normal return (older Keras ended the whole fit after epoch 1).
# `RS_REPEAT=1`: `.repeat()` added (the fix): 1,800 steps.
# Truth (printed): epochs in the history, optimizer steps taken, against the plan.
import os

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

REPEAT = os.environ.get("RS_REPEAT") == "1"
rng = np.random.default_rng(0)
x = rng.random((3200, 64), dtype=np.float32)
y = (x @ rng.standard_normal((64, 1))).astype("float32")
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(3200).batch(32)
if REPEAT:
    ds = ds.repeat()
model = keras.Sequential(
    [keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(1)]
)
model.compile("adam", "mse")
_hook.mark()
h = model.fit(ds, epochs=12, steps_per_epoch=150, verbose=0)
print(
    f"TRUTH {'repeat' if REPEAT else 'no repeat'}: {len(h.history['loss'])} epochs of 12 planned, "
    f"{int(model.optimizer.iterations)} steps of {12 * 150} planned"
)
