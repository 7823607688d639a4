# Source: https://github.com/tensorflow/tensorflow/issues/32157
# "[TF 2.0] non-tensor argument to target of tf.function logging slows down training":
# a GradientTape custom loop whose @tf.function train_step takes the Python int step
# (for logging), so every step traces a new graph. Synthetic MNIST-shaped data.
# Truth: one trace per step, each step ~10x slower than a traced one; RSS grows.
import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

x = np.random.rand(1600, 784).astype("float32")
y = np.random.randint(0, 10, 1600)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
model = tf.keras.Sequential(
    [tf.keras.Input((784,)), tf.keras.layers.Dense(64, activation="relu"), tf.keras.layers.Dense(10)]
)
_hook.mark()
optimizer = tf.keras.optimizers.Adam()
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step(images, labels, step):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    if step % 25 == 0:
        tf.print("step", step, "loss", loss)
    return loss


step = 0
for _epoch in range(4):
    for images, labels in ds:
        train_step(images, labels, step)
        step += 1
