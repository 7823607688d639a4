# Source: https://github.com/tensorflow/tensorflow/issues/26309 ("tf.Data Pipeline using interleave
# starts fast then becomes extremely slow": thousands of TFRecord files, `interleave` with one
# record from each file per batch) and https://github.com/tensorflow/tensorflow/issues/72014
# ("Memory usage with tf.data pipeline (HDF5, TFRecords)": a sawtooth RSS over epochs, asked
# "is this expected?"; the answer: buffers per open file, no leak). 24 TFRecord shards written to
# a temp directory (1,000 records of 256 floats + a label each), read with
# `list_files(shuffle=True).interleave(TFRecordDataset, cycle_length=24, block_length=1,
# num_parallel_calls=AUTOTUNE)`, parsed with a batched `parse_example`, prefetched, into a
# Keras MLP, 6 epochs (healthy). `RS_SERIAL=1`: the first form: interleave without
# parallel calls, `parse_single_example` per record in a map without parallel calls, no
# prefetch (the input pipeline is the bottleneck).
# Truth (printed): seconds per epoch of fit, and of one pass over the pipeline alone (PLAIN=1).
import os
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

SERIAL = os.environ.get("RS_SERIAL") == "1"
d = tempfile.mkdtemp(prefix="rs_26309_")
rng = np.random.default_rng(0)
w = rng.standard_normal(256).astype("float32")
for s in range(24):
    with tf.io.TFRecordWriter(os.path.join(d, f"part-{s:03d}.tfrecord")) as wr:
        for _ in range(1000):
            f = rng.random(256, dtype=np.float32)
            ex = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "x": tf.train.Feature(float_list=tf.train.FloatList(value=f)),
                        "y": tf.train.Feature(float_list=tf.train.FloatList(value=[float(f @ w)])),
                    }
                )
            )
            wr.write(ex.SerializeToString())
spec = {"x": tf.io.FixedLenFeature([256], tf.float32), "y": tf.io.FixedLenFeature([1], tf.float32)}


def parse(batch):
    p = tf.io.parse_example(batch, spec)
    return p["x"], p["y"]


def parse_one(rec):
    p = tf.io.parse_single_example(rec, spec)
    return p["x"], p["y"]


files = tf.data.Dataset.list_files(os.path.join(d, "*.tfrecord"), shuffle=True)
if SERIAL:
    ds = files.interleave(tf.data.TFRecordDataset, cycle_length=24, block_length=1).map(parse_one).batch(128)
else:
    ds = (
        files.interleave(
            tf.data.TFRecordDataset, cycle_length=24, block_length=1, num_parallel_calls=tf.data.AUTOTUNE
        )
        .batch(128)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
model = keras.Sequential(
    [
        keras.Input((256,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile("adam", "mse")
_hook.mark()
t0 = time.perf_counter()
model.fit(ds, epochs=6, verbose=0)
fit_s = (time.perf_counter() - t0) / 6
line = f"TRUTH {'serial' if SERIAL else 'parallel'} pipeline: fit {fit_s:.2f} s an epoch"
if os.environ.get("PLAIN") == "1":
    t0 = time.perf_counter()
    for _ in ds:
        pass
    line += f"; the pipeline alone {time.perf_counter() - t0:.2f} s a pass"
print(line)
