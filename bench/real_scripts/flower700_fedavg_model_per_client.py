# Source: https://github.com/flwrlabs/flower/issues/700 ("Memory consumption rising during
# simulation", TF 2.4 clients) and google-parfait/tensorflow-federated#751 ("Memory blows up
# using CNN model with multiple clients"): a single-machine FedAvg simulation written by hand.
# Each round, every client builds its model anew (`create_model()`), loads the global weights,
# makes a new SGD optimizer and a new `@tf.function` train step (a closure over that model),
# trains one local epoch on its shard with a GradientTape loop, and hands its weights back; the
# server averages them. 8 clients x 6 rounds = 48 models, optimizers and traced functions,
# never cleared. A 784-128-10 MLP, 512 rows a client, batch 32 (16 steps a client-epoch).
# RS_REUSE=1: one client model, one optimizer and one train step, built once; each client sets
# the global weights into it (and the optimizer's variables back to zero): the healthy form.
# RS_CLEAR=1: the usual advice applied: `tf.keras.backend.clear_session()` before each client's
# model and `gc.collect()` after it (still a new model, optimizer and function per client).
# Truth: RSS after each round, traces of the train step, optimizer updates per round (128).
import gc
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

REUSE = os.environ.get("RS_REUSE") == "1"
CLEAR = os.environ.get("RS_CLEAR") == "1"
CLIENTS, ROUNDS = 8, int(os.environ.get("RS_ROUNDS", "6"))
rng = np.random.default_rng(700)
shards = [
    tf.data.Dataset.from_tensor_slices(
        (rng.random((512, 784), dtype=np.float32), rng.integers(0, 10, 512))
    ).batch(32)
    for _ in range(CLIENTS)
]
loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def create_model():
    return tf.keras.Sequential(
        [tf.keras.Input((784,)), tf.keras.layers.Dense(128, activation="relu"), tf.keras.layers.Dense(10)]
    )


def make_step(model, opt):
    @tf.function
    def train_step(xb, yb):
        traces[0] += 1
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))
        return loss

    return train_step


traces = [0]
global_model = create_model()
global_w = global_model.get_weights()
_hook.mark()
if REUSE:
    shared_model = create_model()
    shared_opt = tf.keras.optimizers.SGD(0.05)
    shared_opt.build(shared_model.trainable_variables)
    shared_step = make_step(shared_model, shared_opt)
rss, updates, times = [], [], []
for _rnd in range(ROUNDS):
    t0, n_up, client_ws = time.perf_counter(), 0, []
    for c in range(CLIENTS):
        if REUSE:
            model, opt, step = shared_model, shared_opt, shared_step
            for v in opt.variables:
                v.assign(tf.zeros_like(v))
        else:
            if CLEAR:
                tf.keras.backend.clear_session()
            model = create_model()
            opt = tf.keras.optimizers.SGD(0.05)
            step = make_step(model, opt)
        model.set_weights(global_w)
        for xb, yb in shards[c]:
            step(xb, yb)
            n_up += 1
        client_ws.append(model.get_weights())
        if CLEAR:
            del model, opt, step
            gc.collect()
    global_w = [np.mean(ws, axis=0) for ws in zip(*client_ws, strict=True)]
    updates.append(n_up)
    times.append(round(time.perf_counter() - t0, 2))
    rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH reuse={REUSE} clear={CLEAR}: {ROUNDS} rounds x {CLIENTS} clients; updates/round {updates}; "
    f"train_step traces {traces[0]}; RSS per round {rss} MiB; round s {times}",
    file=sys.stderr,
)
