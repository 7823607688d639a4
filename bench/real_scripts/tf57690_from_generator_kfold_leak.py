# Source: https://github.com/tensorflow/tensorflow/issues/57690 ("Datasets created by
# `from_generator` do not properly release objects": "This causes crucial memory leak when
# conducting experiments that creates datasets with large memory footprint for multiple times
# (e.g., cross validation)"; the issue's `build_dataset(obj)` wraps a `while True` generator
# closing over the fold's data in `from_generator(..., output_signature=...)`, one per fold) and
# tensorflow#37653 ("Memory Leak in tf.data.Dataset.from_generator"). Here the user's k-fold:
# each fold copies its training rows (fancy indexing: a new 6,000 x 1,000 float32 array, 23
# MiB), wraps them in the infinite generator of 64-row batches, and fits a new MLP
# (`clear_session()` first, as the users did) for 2 epochs of 94 steps; 8 folds.
# RS_FIXED=1: the same folds through `tf.data.Dataset.from_tensor_slices((x, y)).repeat()
# .batch(64)` (the dataset owns a tensor copy, freed with the dataset).
# Truth: RSS after each fold (printed plain): +23 MiB a fold kept with from_generator (the
# generator's closure is never released, so neither is the fold's copy), flat with RS_FIXED.
import gc
import os
import sys

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

FIXED = os.environ.get("RS_FIXED") == "1"
rng = np.random.default_rng(57690)
X = rng.random((8000, 1000), dtype=np.float32)
Y = (X[:, :10].sum(axis=1, keepdims=True) > 5).astype("float32")
folds = np.array_split(rng.permutation(8000), 8)


class FoldData:
    def __init__(self, x, y):
        self.x, self.y = x, y


def build_dataset(obj):
    if FIXED:
        return tf.data.Dataset.from_tensor_slices((obj.x, obj.y)).repeat().batch(64)

    def _generator():
        i = 0
        while True:
            j = (i * 64) % (len(obj.x) - 64)
            yield obj.x[j : j + 64], obj.y[j : j + 64]
            i += 1

    return tf.data.Dataset.from_generator(
        _generator,
        output_signature=(
            tf.TensorSpec(shape=(None, 1000), dtype=tf.float32),
            tf.TensorSpec(shape=(None, 1), dtype=tf.float32),
        ),
    )


_hook.mark()
rss, accs = [], []
for k, val_idx in enumerate(folds[:8]):
    keras.backend.clear_session()
    train_idx = np.concatenate([f for j, f in enumerate(folds) if j != k])[:6000]
    ds = build_dataset(FoldData(X[train_idx], Y[train_idx]))
    model = keras.Sequential(
        [
            keras.Input((1000,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    model.fit(ds, epochs=2, steps_per_epoch=94, verbose=0)
    accs.append(round(float(model.evaluate(X[val_idx], Y[val_idx], verbose=0)[1]), 3))
    del ds, model
    gc.collect()
    rss.append(round(_hook._rss_mib()))
print(f"TRUTH fixed={FIXED}: 8 folds, val acc {accs}; RSS after each fold {rss} MiB", file=sys.stderr)
