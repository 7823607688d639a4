"""One worker of a 2-worker MultiWorkerMirroredStrategy job on localhost, traced by epochwatch.

Run as `python mwms_worker.py INDEX PORT0,PORT1 EPOCHS STEPS SLOW_FROM DELAY [loop|fit]`:
- loop (default): a custom loop (`strategy.run` inside a `tf.function`, one gradient
  all-reduce per step) on a tiny linear model;
- fit: legacy Keras 2 (`tf_keras`, run with TF_USE_LEGACY_KERAS=1) `Model.fit` of a tiny
  model built in the strategy's scope (Keras 3's fit does not support this strategy).
When INDEX is 1 and SLOW_FROM >= 0, this worker does DELAY more seconds of its own work per
step from epoch SLOW_FROM on (a sleep where its input would be prepared, or in a callback),
so the other worker waits for it in every all-reduce.
"""

from __future__ import annotations

import json
import os
import sys
import time

index, ports, epochs, steps, slow_from, delay = (
    int(sys.argv[1]),
    sys.argv[2].split(","),
    int(sys.argv[3]),
    int(sys.argv[4]),
    int(sys.argv[5]),
    float(sys.argv[6]),
)
mode = sys.argv[7] if len(sys.argv) > 7 else "loop"
os.environ["TF_CONFIG"] = json.dumps(
    {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from epochwatch import hook  # noqa: E402

tf.config.threading.set_inter_op_parallelism_threads(1)
tf.config.threading.set_intra_op_parallelism_threads(1)
strategy = tf.distribute.MultiWorkerMirroredStrategy(
    communication_options=tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
)

rng = np.random.default_rng(index)
x_all = rng.normal(size=(steps, 16, 8)).astype("float32")
y_all = rng.normal(size=(steps, 16, 1)).astype("float32")


def straggle(epoch: int) -> None:
    if index == 1 and 0 <= slow_from <= epoch:
        time.sleep(delay)  # this worker's own work grows: the other one waits for it


if mode == "fit":
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(8,))])
        model.compile(tf.keras.optimizers.SGD(0.05), "mse")
    data = tf.data.Dataset.from_tensor_slices((x_all.reshape(-1, 8), y_all.reshape(-1, 1))).batch(16)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    data = data.with_options(options).repeat()

    class Straggle(tf.keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            self.epoch = epoch

        def on_train_batch_begin(self, batch: int, logs: object = None) -> None:
            straggle(self.epoch)

    model.fit(data, epochs=epochs, steps_per_epoch=steps, callbacks=[Straggle()], verbose=0)
else:
    w = tf.Variable(tf.zeros([8, 1]))
    b = tf.Variable(tf.zeros([1]))

    @tf.function
    def train_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        def step_fn(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((tf.matmul(x, w) + b - y) ** 2)
            grads = tape.gradient(loss, [w, b])
            grads = tf.distribute.get_replica_context().all_reduce("mean", grads)
            w.assign_sub(0.05 * grads[0])
            b.assign_sub(0.05 * grads[1])
            return loss

        per_replica = strategy.run(step_fn, args=(x, y))
        return strategy.reduce("MEAN", per_replica, axis=None)

    for epoch in range(epochs):
        with hook.epoch(epoch):
            for step in range(steps):
                straggle(epoch)
                loss = train_step(tf.constant(x_all[step]), tf.constant(y_all[step]))
                hook.log(loss=loss)
print("done", index, flush=True)
