# Source: https://www.tensorflow.org/guide/keras/writing_a_training_loop_from_scratch
# (the pattern of keras-team/keras#... and most custom-loop reports): a healthy GradientTape
# loop, @tf.function train_step on tensors, metrics reset per epoch. Truth: flat RSS, flat steps.
import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

x = np.random.rand(6400, 784).astype("float32")
y = np.random.randint(0, 10, 6400)
ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1024).batch(64)
model = tf.keras.Sequential(
    [tf.keras.Input((784,)), tf.keras.layers.Dense(64, activation="relu"), tf.keras.layers.Dense(10)]
)
_hook.mark()
optimizer = tf.keras.optimizers.SGD(learning_rate=1e-3)
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
acc = tf.keras.metrics.SparseCategoricalAccuracy()


@tf.function
def train_step(images, labels):
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = loss_fn(labels, logits)
    grads = tape.gradient(loss, model.trainable_weights)
    optimizer.apply_gradients(zip(grads, model.trainable_weights, strict=False))
    acc.update_state(labels, logits)
    return loss


for epoch in range(10):
    for images, labels in ds:
        loss = train_step(images, labels)
    print("epoch", epoch, "loss", float(loss), "acc", float(acc.result()))
    acc.reset_state()
