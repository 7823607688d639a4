# Source: https://github.com/seungeunrho/minimalRL/issues/18 ("TF2 implementation for Policy
# Gradient Reinforce") and dion-jy/gym-ddpg-keras#2 ("tf.function retracing problem fixed"):
# REINFORCE in TF2. Each episode the policy acts step by step (`model(state)` eagerly, one call
# per environment step), then one `@tf.function` update runs on the whole episode's stacked
# states, actions and returns. Episodes end at different lengths (CartPole-like: 10-200 steps),
# so the update sees a new shape almost every episode and traces again. No gym here: a tiny
# synthetic environment whose episode length is drawn per episode. 300 episodes.
# RS_SIG=1: the update has `input_signature` with None in the time dimension: one trace.
# Truth: traces of the update, episodes, optimizer updates (one per episode), RSS, time per
# 50 episodes.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

SIG = os.environ.get("RS_SIG") == "1"
EPISODES = int(os.environ.get("RS_EPISODES", "300"))
rng = np.random.default_rng(18)
model = tf.keras.Sequential(
    [tf.keras.Input((4,)), tf.keras.layers.Dense(128, activation="relu"), tf.keras.layers.Dense(2)]
)
_hook.mark()
opt = tf.keras.optimizers.Adam(2e-4)
traces = [0]


def update(states, actions, returns):
    traces[0] += 1
    with tf.GradientTape() as tape:
        logp = tf.nn.log_softmax(model(states, training=True))
        chosen = tf.gather(logp, actions, batch_dims=1)
        loss = -tf.reduce_sum(chosen * returns)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables, strict=False))
    return loss


if SIG:
    spec = [
        tf.TensorSpec([None, 4], tf.float32),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None], tf.float32),
    ]
    update = tf.function(update, input_signature=spec)
else:
    update = tf.function(update)

rss, per50, t0 = [], [], time.perf_counter()
for ep in range(EPISODES):
    length = int(rng.integers(10, 200))
    states, actions, rewards = [], [], []
    s = rng.standard_normal(4).astype(np.float32)
    for _t in range(length):
        logits = model(s[None, :])  # one eager call per environment step
        a = int(tf.random.categorical(logits, 1)[0, 0])
        states.append(s)
        actions.append(a)
        rewards.append(1.0)
        s = (s + rng.standard_normal(4).astype(np.float32) * 0.1).astype(np.float32)
    g, returns = 0.0, []
    for r in reversed(rewards):
        g = r + 0.98 * g
        returns.append(g)
    returns = np.array(returns[::-1], np.float32)
    update(np.stack(states), np.array(actions, np.int32), (returns - returns.mean()) / (returns.std() + 1e-8))
    if ep % 50 == 49:
        per50.append(round(time.perf_counter() - t0, 1))
        rss.append(round(_hook._rss_mib()))
        t0 = time.perf_counter()
print(
    f"TRUTH sig={SIG}: {EPISODES} episodes, updates {int(opt.iterations)}, update traces {traces[0]}; "
    f"s per 50 episodes {per50}; RSS {rss} MiB",
    file=sys.stderr,
)
