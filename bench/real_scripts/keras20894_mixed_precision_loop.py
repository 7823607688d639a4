# Source: https://github.com/keras-team/keras/issues/20894 ("Mixed precision tutorial does not work
# for custom training loop": the TF guide's `optimizer.get_scaled_loss` /
# `get_unscaled_gradients` are gone in Keras 3; the answer points to Keras' custom-loop guide,
# where `LossScaleOptimizer.scale_loss` scales and `apply_gradients` unscales) and
# https://github.com/keras-team/keras/issues/19479 (the same, with the Keras 3 loop the user
# wrote). The guide's model: `set_global_policy('mixed_float16')`, Dense(4096) x2 on 784 inputs
# (here 512, for the CPU), a float32 softmax; MNIST-sized synthetic data (6,400 rows, batch 64,
# 100 steps an epoch), 8 epochs, `@tf.function train_step` as in the guide.
# RS_FIT=1: the same model through `compile` + `fit` (Keras wraps the optimizer in a
# LossScaleOptimizer itself); RS_FP32=1: the float32 twin of the custom loop.
# Healthy in every variant. Truth: optimizer steps (`optimizer.iterations`), epochs, seconds per
# epoch and the final loss scale (printed by the plain run).
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

FIT = os.environ.get("RS_FIT") == "1"
if os.environ.get("RS_FP32") != "1":
    keras.mixed_precision.set_global_policy("mixed_float16")
rng = np.random.default_rng(20894)
x = rng.random((6400, 784), dtype=np.float32)
y = rng.integers(0, 10, 6400)
inputs = keras.Input((784,))
h = keras.layers.Dense(512, activation="relu", name="dense_1")(inputs)
h = keras.layers.Dense(512, activation="relu", name="dense_2")(h)
h = keras.layers.Dense(10, name="dense_logits")(h)
outputs = keras.layers.Activation("softmax", dtype="float32", name="predictions")(h)
model = keras.Model(inputs, outputs)
loss_fn = keras.losses.SparseCategoricalCrossentropy()
secs, t = [], [0.0]
_hook.mark()
if FIT:

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            t[0] = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            secs.append(round(time.perf_counter() - t[0], 2))

    model.compile(keras.optimizers.Adam(1e-3), loss_fn)
    model.fit(x, y, batch_size=64, epochs=8, verbose=0, callbacks=[Timer()])
    optimizer = model.optimizer
else:
    optimizer = keras.optimizers.Adam(1e-3)
    if os.environ.get("RS_FP32") != "1":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(6400).batch(64)

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=False))
        return loss

    for _epoch in range(8):
        t[0] = time.perf_counter()
        for xb, yb in ds:
            train_step(xb, yb)
        secs.append(round(time.perf_counter() - t[0], 2))
scale = getattr(optimizer, "dynamic_scale", None)
print(
    f"TRUTH fit={FIT} policy={keras.mixed_precision.global_policy().name}; optimizer steps "
    f"{int(optimizer.iterations.numpy())} in {len(secs)} epochs; epoch s {secs}; loss scale "
    f"{float(scale.numpy()) if scale is not None else None}"
)
