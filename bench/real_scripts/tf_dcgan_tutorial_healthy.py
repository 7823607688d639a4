# Source: https://www.tensorflow.org/tutorials/generative/dcgan (the DCGAN tutorial's loop:
# two models, two Adam optimizers, one @tf.function train_step with two GradientTapes, an
# epoch a pass over the dataset). Smaller layers and synthetic 28x28 images.
# Healthy: flat RSS, flat epochs.
import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf
from tensorflow.keras import layers

BATCH_SIZE, NOISE_DIM = 64, 32
images = np.random.rand(1280, 28, 28, 1).astype("float32") * 2 - 1
dataset = tf.data.Dataset.from_tensor_slices(images).shuffle(1280).batch(BATCH_SIZE)

generator = tf.keras.Sequential(
    [
        tf.keras.Input((NOISE_DIM,)),
        layers.Dense(7 * 7 * 16, use_bias=False),
        layers.LeakyReLU(),
        layers.Reshape((7, 7, 16)),
        layers.Conv2DTranspose(8, 5, strides=2, padding="same", use_bias=False),
        layers.LeakyReLU(),
        layers.Conv2DTranspose(1, 5, strides=2, padding="same", activation="tanh"),
    ]
)
discriminator = tf.keras.Sequential(
    [
        tf.keras.Input((28, 28, 1)),
        layers.Conv2D(8, 5, strides=2, padding="same"),
        layers.LeakyReLU(),
        layers.Flatten(),
        layers.Dense(1),
    ]
)
_hook.mark()
cross_entropy = tf.keras.losses.BinaryCrossentropy(from_logits=True)
generator_optimizer = tf.keras.optimizers.Adam(1e-4)
discriminator_optimizer = tf.keras.optimizers.Adam(1e-4)


@tf.function
def train_step(images):
    noise = tf.random.normal([BATCH_SIZE, NOISE_DIM])
    with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
        generated_images = generator(noise, training=True)
        real_output = discriminator(images, training=True)
        fake_output = discriminator(generated_images, training=True)
        gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
        disc_loss = cross_entropy(tf.ones_like(real_output), real_output) + cross_entropy(
            tf.zeros_like(fake_output), fake_output
        )
    gradients_of_generator = gen_tape.gradient(gen_loss, generator.trainable_variables)
    gradients_of_discriminator = disc_tape.gradient(disc_loss, discriminator.trainable_variables)
    generator_optimizer.apply_gradients(
        zip(gradients_of_generator, generator.trainable_variables, strict=True)
    )
    discriminator_optimizer.apply_gradients(
        zip(gradients_of_discriminator, discriminator.trainable_variables, strict=True)
    )


for epoch in range(15):
    for image_batch in dataset:
        train_step(image_batch)
    print("epoch", epoch)
