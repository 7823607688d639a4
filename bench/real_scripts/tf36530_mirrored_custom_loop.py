# Source: https://github.com/tensorflow/tensorflow/issues/36530 ("Distributed training time by
# MirroredStrategy varies greatly between Keras API and Custom training loop"): the TF tutorial's
# custom loop under `tf.distribute.MirroredStrategy` -- model and optimizer built in
# `strategy.scope()`, `strategy.experimental_distribute_dataset`, a `@tf.function`
# `distributed_train_step` calling `strategy.run(train_step, ...)` and
# `strategy.reduce(SUM, ...)`, a loss scaled by the global batch (`compute_average_loss`), a test
# step per epoch, metrics reset each epoch. Here on CPU with two logical CPU devices (the TF docs'
# way to test a strategy without GPUs), Fashion-MNIST-shaped synthetic data (6,000 train, 1,000
# test, 28x28), a small CNN, global batch 64, 10 epochs. `RS_ONE=1`: `MirroredStrategy()` on the
# one CPU device. `RS_DEFAULT=1`: the default strategy (`tf.distribute.get_strategy()`), the
# same loop without mirroring. Healthy. Truth: RSS and epoch seconds at
# epochs 2 and 10, train_step traces.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

if os.environ.get("RS_DEFAULT") == "1":  # the same loop with no strategy (the default one)
    strategy = tf.distribute.get_strategy()
elif os.environ.get("RS_ONE") == "1":  # one replica: MirroredStrategy() on the only device
    strategy = tf.distribute.MirroredStrategy()
else:
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
rng = np.random.default_rng(36530)
train_images = rng.random((6000, 28, 28, 1), dtype=np.float32)
train_labels = rng.integers(0, 10, 6000)
test_images = rng.random((1000, 28, 28, 1), dtype=np.float32)
test_labels = rng.integers(0, 10, 1000)
BATCH_SIZE_PER_REPLICA = 32
GLOBAL_BATCH_SIZE = BATCH_SIZE_PER_REPLICA * strategy.num_replicas_in_sync
EPOCHS = 10
train_dataset = (
    tf.data.Dataset.from_tensor_slices((train_images, train_labels)).shuffle(6000).batch(GLOBAL_BATCH_SIZE)
)
test_dataset = tf.data.Dataset.from_tensor_slices((test_images, test_labels)).batch(GLOBAL_BATCH_SIZE)
train_dist_dataset = strategy.experimental_distribute_dataset(train_dataset)
test_dist_dataset = strategy.experimental_distribute_dataset(test_dataset)
traces = {"train_step": 0}

with strategy.scope():
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Input((28, 28, 1)),
            tf.keras.layers.Conv2D(32, 3, activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Conv2D(64, 3, activation="relu"),
            tf.keras.layers.MaxPooling2D(),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(10),
        ]
    )
    optimizer = tf.keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)  # Keras 3: slots made in scope, not inside strategy.run
    loss_object = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    test_loss = tf.keras.metrics.Mean(name="test_loss")
    train_accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name="train_accuracy")
    test_accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name="test_accuracy")


def compute_loss(labels, predictions):
    per_example_loss = loss_object(labels, predictions)
    return tf.nn.compute_average_loss(per_example_loss, global_batch_size=GLOBAL_BATCH_SIZE)


def train_step(inputs):
    traces["train_step"] += 1  # Python side effect: runs once per trace
    images, labels = inputs
    with tf.GradientTape() as tape:
        predictions = model(images, training=True)
        loss = compute_loss(labels, predictions)
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    train_accuracy.update_state(labels, predictions)
    return loss


def test_step(inputs):
    images, labels = inputs
    predictions = model(images, training=False)
    test_loss.update_state(loss_object(labels, predictions))
    test_accuracy.update_state(labels, predictions)


@tf.function
def distributed_train_step(dataset_inputs):
    per_replica_losses = strategy.run(train_step, args=(dataset_inputs,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_losses, axis=None)


@tf.function
def distributed_test_step(dataset_inputs):
    return strategy.run(test_step, args=(dataset_inputs,))


_hook.mark()
rss, secs = [], []
for epoch in range(EPOCHS):
    t0 = time.perf_counter()
    total_loss, num_batches = 0.0, 0
    for x in train_dist_dataset:
        total_loss += distributed_train_step(x)
        num_batches += 1
    train_loss = total_loss / num_batches
    for x in test_dist_dataset:
        distributed_test_step(x)
    print(
        f"Epoch {epoch + 1}, Loss: {float(train_loss):.4f}, Accuracy: {train_accuracy.result() * 100:.2f},"
        f" Test Loss: {test_loss.result():.4f}, Test Accuracy: {test_accuracy.result() * 100:.2f}"
    )
    test_loss.reset_state()
    train_accuracy.reset_state()
    test_accuracy.reset_state()
    secs.append(time.perf_counter() - t0)
    with open("/proc/self/statm") as f:
        rss.append(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)
if os.environ.get("PLAIN") == "1":
    print(
        f"TRUTH mirrored custom loop ({strategy.num_replicas_in_sync} CPU replicas): RSS epoch 2 {rss[1]:.0f}, 10 {rss[-1]:.0f} MiB;"
        f" epoch s 2 {secs[1]:.2f}, 10 {secs[-1]:.2f} (median {np.median(secs[1:]):.2f}); train_step traces {traces['train_step']}"
    )
