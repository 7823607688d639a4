# Source: https://github.com/tensorflow/tensorflow/issues/35873 (and #21584)
# "having print statements in dataset iterator makes it much slower": a GradientTape loop
# that keeps things in Python lists while iterating. Here each step's gradients are kept
# (to log their norms at the end), so every step holds ~0.8 MB of tensors alive.
# Truth: RSS grows ~40 MB an epoch for the whole run.
import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

x = np.random.rand(3200, 784).astype("float32")
y = np.random.randint(0, 10, 3200)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
model = tf.keras.Sequential(
    [tf.keras.Input((784,)), tf.keras.layers.Dense(256, activation="relu"), tf.keras.layers.Dense(10)]
)
_hook.mark()
optimizer = tf.keras.optimizers.Adam()
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@tf.function
def train_step(images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    return loss, grads


history, all_grads = [], []
for epoch in range(12):
    for images, labels in ds:
        loss, grads = train_step(images, labels)
        history.append(loss)
        all_grads.append(grads)
    print("epoch", epoch, "loss", float(tf.reduce_mean(history[-50:])))
print("grad norms", len(all_grads))
