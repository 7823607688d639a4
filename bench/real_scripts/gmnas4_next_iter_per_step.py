# Source: https://github.com/skhu101/GM-NAS/issues/4 ("iter(dataset) in training loop":
# `input, target = next(iter(train_queue))` inside the batch loop "creates an iter object every
# batch which significantly slows down training. It also makes it so 1 epoch doesn't loop over
# the entire dataset") and SakanaAI/continuous-thought-machines#19 (the same in a tutorial,
# "2-3x faster" once fixed), here in TensorFlow: a GradientTape loop over a tf.data pipeline
# `from_tensor_slices(...).shuffle(len(x)).map(augment).batch(64)`, with
# `images, labels = next(iter(train_ds))` for each of the epoch's steps. Every new iterator
# refills the 20,000-element shuffle buffer (and maps 20,000 images) to hand out one batch.
# RS_FIXED=1: `for images, labels in train_ds:` (one iterator per epoch): healthy.
# Truth: the share of each epoch spent in next(iter(...)) (or the iterator's next), the steps per
# second, and how many distinct samples the epoch saw (the index rides along in the data).
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

FIXED = os.environ.get("RS_FIXED") == "1"
N = 20000
rng = np.random.default_rng(4)
x = rng.random((N, 16, 16, 1), dtype=np.float32)
y = rng.integers(0, 10, N)
idx = np.arange(N)


def augment(i, img, lab):
    img = tf.image.random_flip_left_right(img)
    img = tf.image.random_brightness(img, 0.1)
    return i, img, lab


train_ds = tf.data.Dataset.from_tensor_slices((idx, x, y)).shuffle(N).map(augment).batch(64)
model = tf.keras.Sequential(
    [
        tf.keras.Input((16, 16, 1)),
        tf.keras.layers.Conv2D(16, 3, activation="relu"),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10),
    ]
)
_hook.mark()
opt = tf.keras.optimizers.Adam(1e-3)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step(images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    return loss


steps = N // 64
data_s, total_s, seen = 0.0, 0.0, []
for epoch in range(4 if FIXED else 3):
    t_epoch = time.perf_counter()
    ids = set()
    it = iter(train_ds) if FIXED else None
    for _step in range(steps):
        t0 = time.perf_counter()
        i, images, labels = next(it) if FIXED else next(iter(train_ds))
        data_s += time.perf_counter() - t0
        ids.update(i.numpy().tolist())
        loss = train_step(images, labels)
    total_s += time.perf_counter() - t_epoch
    seen.append(len(ids))
    print("epoch", epoch, "loss", float(loss))
print(
    f"TRUTH fixed={FIXED}: {100 * data_s / total_s:.0f}% of the epochs' time getting batches; "
    f"{steps} steps an epoch at {steps * len(seen) / total_s:.0f} steps/s; distinct samples per epoch {seen} of {N}",
    file=sys.stderr,
)
