# Source: https://github.com/LynnHo/DCGAN-LSGAN-WGAN-GP-DRAGAN-Tensorflow-2/issues/4 ("what the
# mean of n_critic = 5") and its train.py: a TF2 WGAN-GP in a GradientTape loop, two models, two
# Adams, two `@tf.function`s: `train_D` (critic loss + gradient penalty from a nested tape) on
# every batch, `train_G` on every N_CRITIC-th batch only. Dense G/D on 28x28 images, 3,200 rows,
# batch 64 (50 batches an epoch: 50 critic updates, 10 generator updates), 10 epochs.
# RS_GFIRST=1: the generator's step runs first in each group (the form of keras-io's wgan_gp,
# d_steps after one g step), so the *generator's* optimizer is the first one to update.
# RS_RESET_D=N: every N epochs the critic is built anew with a new Adam (a "discriminator
# reset" trick), and both tf.functions with it (the old ones hold the old variables); the
# generator and its Adam go on: one training, one generator, 10 // N critics.
# Truth: per epoch, critic updates 50 and generator updates 10; epoch times; RSS.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

GFIRST = os.environ.get("RS_GFIRST") == "1"
RESET_D = int(os.environ.get("RS_RESET_D", "0"))
N_CRITIC, Z = 5, 64
rng = np.random.default_rng(4)
x = rng.random((3200, 784), dtype=np.float32) * 2 - 1
ds = tf.data.Dataset.from_tensor_slices(x).shuffle(3200).batch(64, drop_remainder=True)
G = tf.keras.Sequential(
    [
        tf.keras.Input((Z,)),
        tf.keras.layers.Dense(256, activation="relu"),
        tf.keras.layers.Dense(784, activation="tanh"),
    ]
)


def make_critic():
    return tf.keras.Sequential(
        [
            tf.keras.Input((784,)),
            tf.keras.layers.Dense(256),
            tf.keras.layers.LeakyReLU(0.2),
            tf.keras.layers.Dense(1),
        ]
    )


D = make_critic()
_hook.mark()
G_opt = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
D_opt = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)


def gradient_penalty(real, fake):
    alpha = tf.random.uniform([tf.shape(real)[0], 1])
    inter = real + alpha * (fake - real)
    with tf.GradientTape() as t:
        t.watch(inter)
        pred = D(inter, training=True)
    grad = t.gradient(pred, inter)
    return tf.reduce_mean((tf.norm(grad, axis=1) - 1.0) ** 2)


def train_G_fn():
    with tf.GradientTape() as t:
        z = tf.random.normal([64, Z])
        g_loss = -tf.reduce_mean(D(G(z, training=True), training=True))
    grads = t.gradient(g_loss, G.trainable_variables)
    G_opt.apply_gradients(zip(grads, G.trainable_variables, strict=False))
    return g_loss


def train_D_fn(real):
    with tf.GradientTape() as t:
        z = tf.random.normal([tf.shape(real)[0], Z])
        fake = G(z, training=True)
        d_loss = tf.reduce_mean(D(fake, training=True)) - tf.reduce_mean(D(real, training=True))
        gp = gradient_penalty(real, fake)
        loss = d_loss + 10.0 * gp
    grads = t.gradient(loss, D.trainable_variables)
    D_opt.apply_gradients(zip(grads, D.trainable_variables, strict=False))
    return loss


train_G, train_D = tf.function(train_G_fn), tf.function(train_D_fn)
d_per, g_per, times = [], [], []
for epoch in range(10):
    if RESET_D and epoch and epoch % RESET_D == 0:
        D, D_opt = make_critic(), tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
        train_G, train_D = tf.function(train_G_fn), tf.function(train_D_fn)
    t0, d0, g0 = time.perf_counter(), int(D_opt.iterations), int(G_opt.iterations)
    for i, real in enumerate(ds):
        if GFIRST and i % N_CRITIC == 0:
            train_G()
        train_D(real)
        if not GFIRST and i % N_CRITIC == N_CRITIC - 1:
            train_G()
    d_per.append(int(D_opt.iterations) - d0)
    g_per.append(int(G_opt.iterations) - g0)
    times.append(round(time.perf_counter() - t0, 2))
print(
    f"TRUTH gfirst={GFIRST} reset_d={RESET_D}: critic updates/epoch {d_per}, generator updates/epoch {g_per}; epoch s {times}",
    file=sys.stderr,
)
