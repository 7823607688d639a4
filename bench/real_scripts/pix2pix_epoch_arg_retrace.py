# Source: TensorFlow's pix2pix tutorial loop as users copied it (tensorflow/docs
# site/en/tutorials/generative/pix2pix.ipynb, 2020 version: `@tf.function def
# train_step(input_image, target, epoch)` writing `tf.summary.scalar(..., step=epoch)`, called
# `train_step(input_image, target, epoch)` with the Python int epoch), reported by DLPerf as
# https://github.com/spmallick/learnopencv/issues/806 and
# https://github.com/solaris33/deep-learning-tensorflow-book-code/issues/8 ("Python type argument
# `epoch` is passed to tf.function decorated function `train_step` ... every time the value
# changes, a new graph will be generated"). Small U-Net-ish generator and PatchGAN on 32x32.
# RS_PYENUM=1: Python's enumerate(train_ds) instead of the tutorial's train_ds.enumerate().
# Truth: one new trace of train_step per epoch (the first step of each epoch slow); printed.
import os
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf
from tensorflow.keras import layers

inp = np.random.rand(640, 32, 32, 3).astype("float32") * 2 - 1
tar = np.clip(inp * 0.5 + 0.1, -1, 1).astype("float32")
train_ds = tf.data.Dataset.from_tensor_slices((inp, tar)).shuffle(640).batch(16)


def down(f):
    return tf.keras.Sequential(
        [
            layers.Conv2D(f, 4, strides=2, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
        ]
    )


def up(f):
    return tf.keras.Sequential(
        [
            layers.Conv2DTranspose(f, 4, strides=2, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
        ]
    )


def Generator():
    x_in = layers.Input((32, 32, 3))
    d1 = down(32)(x_in)
    d2 = down(64)(d1)
    d3 = down(64)(d2)
    u1 = layers.Concatenate()([up(64)(d3), d2])
    u2 = layers.Concatenate()([up(32)(u1), d1])
    out = layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh")(u2)
    return tf.keras.Model(x_in, out)


def Discriminator():
    a, b = layers.Input((32, 32, 3)), layers.Input((32, 32, 3))
    x = layers.Concatenate()([a, b])
    x = down(32)(x)
    x = down(64)(x)
    return tf.keras.Model([a, b], layers.Conv2D(1, 4, padding="same")(x))


generator, discriminator = Generator(), Discriminator()
loss_object = tf.keras.losses.BinaryCrossentropy(from_logits=True)
generator_optimizer = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
discriminator_optimizer = tf.keras.optimizers.Adam(2e-4, beta_1=0.5)
summary_writer = tf.summary.create_file_writer(os.path.join(tempfile.mkdtemp(prefix="rs_p2p_"), "fit"))
_hook.mark()
traces = [0]


@tf.function
def train_step(input_image, target, epoch):
    traces[0] += 1
    with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
        gen_output = generator(input_image, training=True)
        disc_real_output = discriminator([input_image, target], training=True)
        disc_generated_output = discriminator([input_image, gen_output], training=True)
        gan_loss = loss_object(tf.ones_like(disc_generated_output), disc_generated_output)
        l1_loss = tf.reduce_mean(tf.abs(target - gen_output))
        gen_total_loss = gan_loss + 100 * l1_loss
        disc_loss = loss_object(tf.ones_like(disc_real_output), disc_real_output) + loss_object(
            tf.zeros_like(disc_generated_output), disc_generated_output
        )
    generator_gradients = gen_tape.gradient(gen_total_loss, generator.trainable_variables)
    discriminator_gradients = disc_tape.gradient(disc_loss, discriminator.trainable_variables)
    generator_optimizer.apply_gradients(zip(generator_gradients, generator.trainable_variables, strict=False))
    discriminator_optimizer.apply_gradients(
        zip(discriminator_gradients, discriminator.trainable_variables, strict=False)
    )
    with summary_writer.as_default():
        tf.summary.scalar("gen_total_loss", gen_total_loss, step=epoch)
        tf.summary.scalar("disc_loss", disc_loss, step=epoch)


first_step, rest, rss = [], [], []
for epoch in range(12):
    t0 = time.perf_counter()
    batches = enumerate(train_ds) if os.environ.get("RS_PYENUM") == "1" else train_ds.enumerate()
    for n, (input_image, target) in batches:
        t = time.perf_counter()
        train_step(input_image, target, epoch)
        if n == 0:
            first_step.append(time.perf_counter() - t)
    rest.append(time.perf_counter() - t0 - first_step[-1])
    rss.append(round(_hook._rss_mib()))
    print("epoch", epoch, "%.2fs" % (time.perf_counter() - t0))
print(
    f"TRUTH traces {traces[0]} in 12 epochs; first step of each epoch {[round(x, 2) for x in first_step]} s;"
    f" rest of each epoch {[round(x, 2) for x in rest]} s; RSS {rss} MiB"
)
