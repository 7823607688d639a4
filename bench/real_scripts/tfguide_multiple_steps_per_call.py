# Source: TensorFlow's TPU guide, "Improving performance with multiple steps inside tf.function"
# (https://www.tensorflow.org/guide/tpu: `@tf.function def train_multiple_steps(iterator, steps):
# for _ in tf.range(steps): strategy.run(step_fn, args=(next(iterator),))`, "steps_per_eval"
# steps per call), the custom-loop counterpart of `compile(steps_per_execution=N)`, also TF Model
# Garden's `steps_per_loop`. Here on the default strategy (CPU): an MLP on 6,400 rows, batch 64
# (100 batches an epoch), each epoch made of 10 calls of 10 steps over one iterator of the
# repeated dataset, 10 epochs; a `train_loss` metric reset each epoch, as in the guide.
# RS_PER_CALL=1: the twin, one step per call (100 calls an epoch).
# Healthy. Truth: optimizer steps per epoch and calls per epoch (printed by the plain run).
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

PER_CALL = int(os.environ.get("RS_PER_CALL", "10"))
rng = np.random.default_rng(2024)
x, y = rng.random((6400, 32), dtype=np.float32), rng.integers(0, 10, 6400)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(6400).batch(64, drop_remainder=True).repeat()
model = keras.Sequential(
    [keras.Input((32,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)]
)
optimizer = keras.optimizers.Adam(1e-3)
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
train_loss = keras.metrics.Mean()


@tf.function
def train_multiple_steps(iterator, steps):
    def step_fn(inputs):
        xb, yb = inputs
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        optimizer.apply_gradients(
            zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables, strict=False)
        )
        train_loss.update_state(loss)

    for _ in tf.range(steps):
        step_fn(next(iterator))


iterator = iter(ds)
steps_per_epoch = 100
_hook.mark()
per_epoch, losses, secs = [], [], []
for _epoch in range(10):
    t0, before = time.perf_counter(), int(optimizer.iterations.numpy())
    for _ in range(steps_per_epoch // PER_CALL):
        train_multiple_steps(iterator, tf.convert_to_tensor(PER_CALL))
    per_epoch.append(int(optimizer.iterations.numpy()) - before)
    losses.append(round(float(train_loss.result()), 4))
    train_loss.reset_state()
    secs.append(round(time.perf_counter() - t0, 2))
print(
    f"TRUTH steps per call {PER_CALL}; optimizer steps per epoch {per_epoch}; calls per epoch {steps_per_epoch // PER_CALL}; loss {losses}; epoch s {secs}"
)
