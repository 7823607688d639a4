# Source: https://github.com/keras-team/keras-io/issues/330 ("wgan_gp d_steps repetitions use
# the same input images") and keras-io PR 1612 (Keras 3 wgan_gp): a `keras.Model` subclass that
# overrides `train_step` (Keras 3, TF backend) with two optimizers given to its own `compile(
# d_optimizer=..., g_optimizer=...)`: `d_steps=3` critic updates with a gradient penalty, then one
# generator update, per batch; trained with `fit`. Dense G/D on 784-d rows, 3,200 rows, batch
# 64 (50 batches an epoch), 10 epochs.
# RS_KEEP=1: `run_eagerly=True` (the guide's debugging advice left on), and the train_step keeps
# each step's generated batch in a Python list on the model (`self.samples`, 64x784 floats):
# +10 MiB of tensors an epoch.
# Truth: batches per epoch (50), critic updates 150 and generator updates 50 per epoch, epoch
# times, RSS.
import os
import sys

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf

KEEP = os.environ.get("RS_KEEP") == "1"
Z = 64


class WGAN(keras.Model):
    def __init__(self, discriminator, generator, d_steps=3, gp_weight=10.0):
        super().__init__()
        self.discriminator, self.generator = discriminator, generator
        self.d_steps, self.gp_weight = d_steps, gp_weight
        self.samples = []

    def compile(self, d_optimizer, g_optimizer):
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    def gradient_penalty(self, real, fake):
        alpha = tf.random.uniform([tf.shape(real)[0], 1])
        inter = real + alpha * (fake - real)
        with tf.GradientTape() as t:
            t.watch(inter)
            pred = self.discriminator(inter, training=True)
        grads = t.gradient(pred, [inter])[0]
        return tf.reduce_mean((tf.norm(grads, axis=1) - 1.0) ** 2)

    def train_step(self, real):
        n = tf.shape(real)[0]
        for _ in range(self.d_steps):
            z = tf.random.normal([n, Z])
            with tf.GradientTape() as tape:
                fake = self.generator(z, training=True)
                d_cost = tf.reduce_mean(self.discriminator(fake, training=True)) - tf.reduce_mean(
                    self.discriminator(real, training=True)
                )
                d_loss = d_cost + self.gp_weight * self.gradient_penalty(real, fake)
            d_grad = tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(
                zip(d_grad, self.discriminator.trainable_variables, strict=False)
            )
        z = tf.random.normal([n, Z])
        with tf.GradientTape() as tape:
            gen = self.generator(z, training=True)
            g_loss = -tf.reduce_mean(self.discriminator(gen, training=True))
        g_grad = tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(g_grad, self.generator.trainable_variables, strict=False))
        if KEEP:
            self.samples.append(gen)
        return {"d_loss": d_loss, "g_loss": g_loss}


class Trace(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rss, self.d, self.g = [], [], []

    def on_epoch_end(self, epoch, logs=None):
        self.rss.append(round(_hook._rss_mib()))
        self.d.append(int(self.model.d_optimizer.iterations))
        self.g.append(int(self.model.g_optimizer.iterations))


rng = np.random.default_rng(330)
x = (rng.random((3200, 784), dtype=np.float32) * 2 - 1).astype(np.float32)
G = keras.Sequential(
    [
        keras.Input((Z,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(784, activation="tanh"),
    ]
)
D = keras.Sequential(
    [keras.Input((784,)), keras.layers.Dense(256), keras.layers.LeakyReLU(0.2), keras.layers.Dense(1)]
)
_hook.mark()
wgan = WGAN(D, G)
wgan.compile(keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5))
if KEEP:
    wgan.run_eagerly = True
cb = Trace()
hist = wgan.fit(x, batch_size=64, epochs=int(os.environ.get("RS_EPOCHS", "10")), callbacks=[cb], verbose=0)
print(
    f"TRUTH keep={KEEP}: critic iterations at each epoch end {cb.d}, generator {cb.g}; "
    f"RSS {cb.rss} MiB; d_loss {[round(v, 2) for v in hist.history['d_loss']]}",
    file=sys.stderr,
)
