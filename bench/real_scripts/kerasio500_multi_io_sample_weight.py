# Source: https://github.com/keras-team/keras-io/pull/500 (the Keras functional API guide's
# "multi-input and multi-output" ticket model: inputs `title` and `body` (word ids) and `tags`
# (multi-hot), outputs `priority` (1 logit) and `department` (4-way softmax), dict losses and
# `loss_weights={"priority": 1.0, "department": 0.2}`), with per-output `sample_weight` dicts as
# asked in https://github.com/keras-team/keras/issues/12708 (documentation of sample weights for
# multi-output models). Synthetic data of the guide's shapes (1,280 -> 6,400 tickets, vocabulary
# 10,000, 12 tags), fitted with dict inputs, dict targets and a dict of sample weights (urgent
# tickets weigh 3x on `priority`), 12 epochs with a 20% validation split. `RS_DATASET=1`: the same
# from a tf.data.Dataset of (x dict, y dict, sample_weight dict) triples. Healthy: RSS flat, epoch
# time flat. Truth: RSS and epoch seconds at epochs 2 and 12, and the final weighted losses.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf
from tensorflow import keras

DATASET = os.environ.get("RS_DATASET") == "1"
num_tags, num_words, num_departments, n = 12, 10000, 4, 6400
rng = np.random.default_rng(500)
title_data = rng.integers(0, num_words, size=(n, 10))
body_data = rng.integers(0, num_words, size=(n, 100))
tags_data = rng.integers(0, 2, size=(n, num_tags)).astype("float32")
priority_targets = rng.random(size=(n, 1)).astype("float32")
dept_targets = rng.integers(0, 2, size=(n, num_departments)).astype("float32")
w_priority = np.where(priority_targets[:, 0] > 0.8, 3.0, 1.0).astype("float32")
w_dept = np.ones(n, dtype="float32")

title_input = keras.Input(shape=(None,), name="title")
body_input = keras.Input(shape=(None,), name="body")
tags_input = keras.Input(shape=(num_tags,), name="tags")
title_features = keras.layers.LSTM(128)(keras.layers.Embedding(num_words, 64)(title_input))
body_features = keras.layers.LSTM(32)(keras.layers.Embedding(num_words, 64)(body_input))
x = keras.layers.concatenate([title_features, body_features, tags_input])
priority_pred = keras.layers.Dense(1, name="priority")(x)
department_pred = keras.layers.Dense(num_departments, name="department")(x)
model = keras.Model(
    inputs=[title_input, body_input, tags_input],
    outputs={"priority": priority_pred, "department": department_pred},
)
model.compile(
    optimizer=keras.optimizers.RMSprop(1e-3),
    loss={
        "priority": keras.losses.BinaryCrossentropy(from_logits=True),
        "department": keras.losses.CategoricalCrossentropy(from_logits=True),
    },
    loss_weights={"priority": 1.0, "department": 0.2},
)
_hook.mark()


class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        with open("/proc/self/statm") as f:
            rss.append(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)
        secs.append(time.perf_counter() - self.t0)


rss, secs = [], []
xs = {"title": title_data, "body": body_data, "tags": tags_data}
ys = {"priority": priority_targets, "department": dept_targets}
sws = {"priority": w_priority, "department": w_dept}
if DATASET:
    cut = int(n * 0.8)
    head = lambda d: {k: v[:cut] for k, v in d.items()}  # noqa: E731
    tail = lambda d: {k: v[cut:] for k, v in d.items()}  # noqa: E731
    train = tf.data.Dataset.from_tensor_slices((head(xs), head(ys), head(sws))).shuffle(2048).batch(32)
    val = tf.data.Dataset.from_tensor_slices((tail(xs), tail(ys), tail(sws))).batch(32)
    hist = model.fit(train, validation_data=val, epochs=12, callbacks=[Clock()], verbose=0)
else:
    hist = model.fit(
        xs,
        ys,
        sample_weight=sws,
        epochs=12,
        batch_size=32,
        validation_split=0.2,
        callbacks=[Clock()],
        verbose=0,
    )
if os.environ.get("PLAIN") == "1":
    h = hist.history
    print(
        f"TRUTH multi-io {'dataset' if DATASET else 'numpy dicts'}: RSS epoch 2 {rss[1]:.0f}, 12 {rss[-1]:.0f} MiB;"
        f" epoch s 2 {secs[1]:.2f}, 12 {secs[-1]:.2f} (median {np.median(secs[1:]):.2f});"
        f" loss {h['loss'][0]:.4f} -> {h['loss'][-1]:.4f}, val_loss {h['val_loss'][0]:.4f} -> {h['val_loss'][-1]:.4f}"
    )
