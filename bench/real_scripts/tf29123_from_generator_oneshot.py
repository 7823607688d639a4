# Source: https://github.com/tensorflow/tensorflow/issues/29123 ("tf.data.Dataset.from_generator()
# empties after use"; a comment: "I had a python generator: gen;
# `tf.data.Dataset.from_generator(lambda: gen, ....)`"): a generator object made once, that
# streams records from a file (here 6,400 synthetic rows of 40 features written to a .npy and
# read back one row at a time), wrapped in `from_generator(lambda: gen, ...)`, batched and fitted
# for one pass (`epochs=1`: each record is seen once, as in online learning from a stream).
# `RS_SHUFFLE=1`: `.shuffle(1000)` before `.batch(32)`, as the tf.data guide does. Truth: the
# rows the fit trained on (optimizer steps x 32) against the rows in the file; the hook must not
# change which rows training sees.
import os
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

N = 6400
path = os.path.join(tempfile.mkdtemp(prefix="rs_29123_"), "records.npy")
rng = np.random.default_rng(9)
data = rng.random((N, 41), dtype=np.float32)
data[:, 40] = (data[:, :40].sum(axis=1) > 20).astype("float32")
np.save(path, data)
yielded = [0]


def stream_records(p):
    rows = np.load(p, mmap_mode="r")
    for row in rows:
        yielded[0] += 1
        yield np.asarray(row[:40]), row[40]


gen = stream_records(path)
ds = tf.data.Dataset.from_generator(
    lambda: gen,
    output_signature=(tf.TensorSpec([40], tf.float32), tf.TensorSpec([], tf.float32)),
)
if os.environ.get("RS_SHUFFLE") == "1":
    ds = ds.shuffle(1000)
ds = ds.batch(32)

model = tf.keras.Sequential(
    [tf.keras.Input((40,)), tf.keras.layers.Dense(32, activation="relu"), tf.keras.layers.Dense(1)]
)
model.compile("adam", tf.keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
_hook.mark()


class Rows(tf.keras.callbacks.Callback):
    rows = 0

    def on_train_batch_begin(self, batch, logs=None):
        Rows.rows = yielded[0]  # rows read by the time each batch starts


hist = model.fit(ds, epochs=1, verbose=0, callbacks=[Rows()])
steps = int(model.optimizer.iterations.numpy())
tag = "TRUTH" if os.environ.get("PLAIN") == "1" else "hooked:"
print(
    f"{tag} file rows {N}, generator yielded {yielded[0]}, optimizer steps {steps} (~{min(N, steps * 32)} rows"
    f" trained on), rows read before fit's last batch {Rows.rows}; loss {hist.history['loss'][-1]:.4f}"
)
