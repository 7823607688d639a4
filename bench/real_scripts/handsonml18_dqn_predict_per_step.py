# Source: ageron/handson-ml2, 18_reinforcement_learning.ipynb (the DQN: `epsilon_greedy_policy`
# returns `np.argmax(model.predict(state[np.newaxis])[0])` at every environment step, and
# `training_step` computes `next_Q_values = model.predict(next_states)` before an eager
# GradientTape update on a batch of 32 from a `deque(maxlen=2000)` replay buffer; discussed in
# ageron/handson-ml2#302) and tensorflow/tensorflow#35124 (robieta on the same kind of loop:
# "If we take the above example and replace [predict with predict_on_batch], the episode time
# drops from ~70 seconds to 5.5-6 seconds"). CartPole replaced by a synthetic 4-state
# environment with random episode lengths (10-60 steps), 60 episodes, training after each step
# from episode 10 (the notebook's `if episode > 50`). No tf.function, no fit.
# RS_CALL=1: `model(x, training=False)` instead of both predicts (the fix).
# Truth: steps, updates, time in predict against the whole loop (printed plain).
import os
import sys
import time
from collections import deque

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf
from tensorflow import keras

CALL = os.environ.get("RS_CALL") == "1"
rng = np.random.default_rng(18)
n_outputs = 2
model = keras.models.Sequential(
    [
        keras.Input((4,)),
        keras.layers.Dense(32, activation="elu"),
        keras.layers.Dense(32, activation="elu"),
        keras.layers.Dense(n_outputs),
    ]
)
optimizer = keras.optimizers.Adam(learning_rate=1e-3)
loss_fn = keras.losses.MeanSquaredError()
replay_memory = deque(maxlen=2000)
batch_size, discount_rate = 32, 0.95
t_pred = 0.0
_hook.mark()


def q_values(x):
    global t_pred
    t0 = time.perf_counter()
    out = np.asarray(model(x, training=False)) if CALL else model.predict(x, verbose=0)
    t_pred += time.perf_counter() - t0
    return out


def epsilon_greedy_policy(state, epsilon=0):
    if rng.random() < epsilon:
        return int(rng.integers(n_outputs))
    return int(np.argmax(q_values(state[np.newaxis])[0]))


def training_step():
    idx = rng.integers(len(replay_memory), size=batch_size)
    states, actions, rewards, next_states, dones = [
        np.array([replay_memory[i][f] for i in idx]) for f in range(5)
    ]
    next_q = q_values(next_states)
    target_q = (rewards + (1 - dones) * discount_rate * np.max(next_q, axis=1)).reshape(-1, 1)
    mask = tf.one_hot(actions, n_outputs)
    with tf.GradientTape() as tape:
        all_q = model(states)
        q = tf.reduce_sum(all_q * mask, axis=1, keepdims=True)
        loss = loss_fn(target_q, q)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=False))


t0, steps = time.perf_counter(), 0
for episode in range(60):
    state = rng.standard_normal(4).astype(np.float32)
    length = int(rng.integers(10, 60))
    for step in range(length):
        epsilon = max(1 - episode / 50, 0.01)
        action = epsilon_greedy_policy(state, epsilon)
        next_state = (state + 0.1 * (action - 0.5) + 0.05 * rng.standard_normal(4)).astype(np.float32)
        done = step == length - 1
        replay_memory.append((state, action, 1.0, next_state, float(done)))
        state = next_state
        steps += 1
        if episode > 10:
            training_step()
total = time.perf_counter() - t0
print(
    f"TRUTH call={CALL}: {steps} steps, {int(optimizer.iterations)} updates; predict/call {t_pred:.1f} s of "
    f"{total:.1f} s ({t_pred / total:.0%})",
    file=sys.stderr,
)
