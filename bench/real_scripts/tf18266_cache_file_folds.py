# Source: https://github.com/tensorflow/tensorflow/issues/18266 ("Cache lockfile already
# exists"; "Part of the cache method problem is that the cached file is not always auto-cleaned
# up", with `ds_train.cache(filename=os.path.join(cache_dir, 'train'))`). Images (here 32x32x3
# float32 after decoding, 36 MiB an epoch) cached to a file in the temp directory. Default:
# one fit of 10 epochs: the cache file is written during epoch 1 and only read after (disk
# grows once: nothing that can matter). `RS_FOLDS=1`: 6-fold cross-validation in one process,
# each fold caching its own training split to a new file that is never deleted (the model reset
# with `set_weights(w0)` each fold, as advised): the temp directory grows about 30 MiB a fold
# and keeps it. Truth: the cache files' bytes after each fit. The files are removed at exit.
import glob
import os
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf
from tensorflow import keras

FOLDS = os.environ.get("RS_FOLDS") == "1"
cache_dir = tempfile.gettempdir()
tag = f"rs18266_{os.getpid()}"
rng = np.random.default_rng(2)
raw = rng.integers(0, 255, (3000, 32, 32, 3), dtype=np.uint8)
labels = rng.integers(0, 10, 3000)


def decode(img, label):
    img = tf.image.convert_image_dtype(img, tf.float32)
    return tf.image.per_image_standardization(img), label


def make_ds(idx, name):
    ds = tf.data.Dataset.from_tensor_slices((raw[idx], labels[idx])).map(decode, num_parallel_calls=2)
    ds = ds.cache(filename=os.path.join(cache_dir, f"{tag}_{name}"))
    return ds.shuffle(1024).batch(64).prefetch(2)


model = keras.Sequential(
    [
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ]
)
model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
w0 = model.get_weights()
_hook.mark()


def cache_mib():
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(cache_dir, f"{tag}_*"))) / 2**20


sizes, rss = [], []


def _rss():
    with open("/proc/self/statm") as f:
        return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)


try:
    if FOLDS:
        nfolds = int(os.environ.get("RS_NFOLDS", "6"))
        folds = np.array_split(rng.permutation(3000), nfolds)
        for k in range(nfolds):
            train_idx = np.concatenate([f for j, f in enumerate(folds) if j != k])
            model.set_weights(w0)
            model.fit(make_ds(train_idx, f"fold{k}"), epochs=4, verbose=0)
            sizes.append(cache_mib())
            rss.append(_rss())
    else:
        model.fit(make_ds(np.arange(3000), "train"), epochs=10, verbose=0)
        sizes.append(cache_mib())
finally:
    for p in glob.glob(os.path.join(cache_dir, f"{tag}_*")):
        os.remove(p)
print(f"RSS after each fit {rss} MiB")
if os.environ.get("PLAIN") == "1":
    print(
        f"TRUTH folds={FOLDS}: cache files in {cache_dir} after each fit {[round(s, 1) for s in sizes]} MiB"
    )
