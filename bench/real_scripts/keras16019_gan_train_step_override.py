# Source: https://github.com/keras-team/keras/issues/16019 ("memory leak following `model.fit()`
# for tf 2.7, 2.8, 2.9": a GAN as a `keras.Model` subclass overriding `train_step`, two tapes,
# two optimizers `gen_optimizer` and `disc_optimizer`, trained with `fit`) and
# https://github.com/keras-team/keras/issues/19071 ("High memory consumption with model.fit in
# TF 2.15 + Keras 3.0.2": the model had `run_eagerly=True`). Written for Keras 3 (the guide's
# "Customizing what happens in fit()" GAN): `train_step(self, data)` updates the discriminator,
# then the generator, each with its own Adam, 8 epochs of 40 batches. Healthy: epochwatch should
# count 320 steps (one per batch, not two) and stay quiet. `RS_EAGER=1`: compiled with
# `run_eagerly=True` (keras#19071's setting).
# Truth (printed): each optimizer's iterations, seconds per epoch, RSS (the _hook line).
import os
import time
import typing

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

EAGER = os.environ.get("RS_EAGER") == "1"
LATENT = 32


class GAN(keras.Model):
    def __init__(self):
        super().__init__()
        self.generator = keras.Sequential(
            [keras.Input((LATENT,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(64)]
        )
        self.discriminator = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(128, activation="relu"), keras.layers.Dense(1)]
        )
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)
        self.d_tracker = keras.metrics.Mean(name="d_loss")
        self.g_tracker = keras.metrics.Mean(name="g_loss")

    def compile(self, d_optimizer, g_optimizer, **kw):
        super().compile(**kw)
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    @property
    def metrics(self):
        return [self.d_tracker, self.g_tracker]

    def train_step(self, real):
        n = tf.shape(real)[0]
        z = keras.random.normal((n, LATENT))
        with tf.GradientTape() as tape:
            fake = self.generator(z)
            logits = self.discriminator(tf.concat([fake, real], 0))
            labels = tf.concat([tf.zeros((n, 1)), tf.ones((n, 1))], 0)
            d_loss = self.bce(labels, logits)
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights, strict=True))
        z = keras.random.normal((n, LATENT))
        with tf.GradientTape() as tape:
            g_loss = self.bce(tf.ones((n, 1)), self.discriminator(self.generator(z)))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights, strict=True))
        self.d_tracker.update_state(d_loss)
        self.g_tracker.update_state(g_loss)
        return {"d_loss": self.d_tracker.result(), "g_loss": self.g_tracker.result()}


rng = np.random.default_rng(0)
real = (rng.standard_normal((2560, 64)) * 0.5 + 1.0).astype("float32")
gan = GAN()
gan.compile(keras.optimizers.Adam(2e-4), keras.optimizers.Adam(2e-4), run_eagerly=EAGER)


class Times(keras.callbacks.Callback):
    t: typing.ClassVar[list] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        Times.t.append(round(time.perf_counter() - self.t0, 2))


_hook.mark()
gan.fit(real, epochs=8, batch_size=64, callbacks=[Times()], verbose=0)
print(
    f"TRUTH {'eager' if EAGER else 'graph'}: d_optimizer iterations {int(gan.d_optimizer.iterations)}, "
    f"g_optimizer {int(gan.g_optimizer.iterations)}; epochs {Times.t} s"
)
