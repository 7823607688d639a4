# Source: https://github.com/tensorflow/tensorflow/issues/32954 ("Keras 2.2.4 Leaks Memory when
# using Tensorflow 2.0.0"; a comment there: a GAN's `g_loss = model.train_on_batch(x, y)`
# "after few epochs, program crash due to out of memory"): the classic Keras GAN loop (the
# keras-team examples' shape): a generator, a discriminator compiled on its own, a combined
# model with the discriminator frozen, then per step `discriminator.train_on_batch` on real
# and fake images and `combined.train_on_batch` on noise; `generator.predict` each step.
# Synthetic 28x28 images instead of MNIST. RS_KEEP=1: every step's generated images are kept
# in a list "to plot later" (200 KiB a step: a real leak of the script's own).
# Truth (TF 2.21 / Keras 3): measured plain.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras
from tensorflow.keras import layers

LATENT, BATCH = 100, 64
x_train = np.random.rand(6400, 28, 28, 1).astype("float32") * 2 - 1

generator = keras.Sequential(
    [
        keras.Input((LATENT,)),
        layers.Dense(256),
        layers.LeakyReLU(0.2),
        layers.BatchNormalization(momentum=0.8),
        layers.Dense(512),
        layers.LeakyReLU(0.2),
        layers.BatchNormalization(momentum=0.8),
        layers.Dense(784, activation="tanh"),
        layers.Reshape((28, 28, 1)),
    ]
)
discriminator = keras.Sequential(
    [
        keras.Input((28, 28, 1)),
        layers.Flatten(),
        layers.Dense(512),
        layers.LeakyReLU(0.2),
        layers.Dense(256),
        layers.LeakyReLU(0.2),
        layers.Dense(1, activation="sigmoid"),
    ]
)
discriminator.compile(
    loss="binary_crossentropy", optimizer=keras.optimizers.Adam(2e-4, 0.5), metrics=["accuracy"]
)
discriminator.trainable = False
z = keras.Input((LATENT,))
combined = keras.Model(z, discriminator(generator(z)))
combined.compile(loss="binary_crossentropy", optimizer=keras.optimizers.Adam(2e-4, 0.5))
_hook.mark()

valid, fake = np.ones((BATCH, 1)), np.zeros((BATCH, 1))
t0 = time.perf_counter()
per100, rss = [], []
kept = []
for step in range(800):
    idx = np.random.randint(0, x_train.shape[0], BATCH)
    noise = np.random.normal(0, 1, (BATCH, LATENT))
    gen_imgs = generator.predict(noise, verbose=0)
    if os.environ.get("RS_KEEP") == "1":
        kept.append(gen_imgs)
    d_loss_real = discriminator.train_on_batch(x_train[idx], valid)
    d_loss_fake = discriminator.train_on_batch(gen_imgs, fake)
    g_loss = combined.train_on_batch(np.random.normal(0, 1, (BATCH, LATENT)), valid)
    if step % 100 == 99:
        per100.append(time.perf_counter() - t0)
        rss.append(_hook._rss_mib())
        t0 = time.perf_counter()
        print(
            "step",
            step + 1,
            "d",
            np.round(d_loss_real, 3),
            "g",
            np.round(g_loss, 3),
            f"100 steps {per100[-1]:.2f}s",
        )
print(
    f"TRUTH per 100 steps first {np.mean(per100[1:4]):.2f}s last {np.mean(per100[-3:]):.2f}s; RSS per 100 steps {[round(r) for r in rss]} MiB"
)
