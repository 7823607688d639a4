# Source: https://github.com/keras-team/keras-io/issues/1483 ("memory leak in code examples": "when
# you run examples/rl/deep_q_network_breakout.py, you will find that the memory leak. even when
# the buff reach its max lenght (max_memory_length), memory still will increase"). The example's
# loop, with synthetic 84x84x4 uint8 frames for the Atari env: an eager GradientTape step on a
# batch of 32 sampled from Python-list replay buffers (`action_history`, `state_history`,
# `state_next_history`, ...), trained every 4 actions, the oldest entry dropped with
# `del history[:1]` once `len(rewards_history) > max_memory_length`. Here max_memory_length=1200
# (56 KiB a transition: ~66 MiB when full), reached at step 1200 of 3000; the frames are kept as
# uint8 (the example keeps float arrays from the env; uint8 keeps the run small). The network is
# the example's conv net narrowed (16/32/32 filters, a 256 dense) so a step fits this box.
# RS_NOCAP=1: the cap forgotten (the buffer grows to the end: 165 MiB).
# Truth: RSS grows ~55 MiB per 1000 steps (and the step time with it: the
# example's `rng.choice(range(len(...)))` and `del history[:1]` are O(buffer)) until the buffer is full, then stays flat (printed by
# the plain run). Growth bounded by design must not end as a warning; with RS_NOCAP=1 it should.
import os
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np
import tensorflow as tf
from keras import layers

NOCAP = os.environ.get("RS_NOCAP") == "1"
num_actions, batch_size, gamma = 4, 32, 0.99
max_memory_length = 10**9 if NOCAP else 1200
update_after_actions, update_target_network = 4, 1000


def create_q_model():
    inputs = layers.Input(shape=(84, 84, 4))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(16, 8, strides=4, activation="relu")(x)
    x = layers.Conv2D(32, 4, strides=2, activation="relu")(x)
    x = layers.Conv2D(32, 3, strides=1, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="relu")(x)
    return keras.Model(inputs=inputs, outputs=layers.Dense(num_actions, activation="linear")(x))


model, model_target = create_q_model(), create_q_model()
optimizer = keras.optimizers.Adam(learning_rate=0.00025, clipnorm=1.0)
loss_function = keras.losses.Huber()
rng = np.random.default_rng(0)
action_history, state_history, state_next_history = [], [], []
rewards_history, done_history = [], []
state = rng.integers(0, 256, (84, 84, 4), dtype=np.uint8)
epsilon, rss, secs, step_secs = 1.0, [], [], []
_hook.mark()
for frame_count in range(1, 3001):
    if epsilon > rng.random():
        action = int(rng.integers(num_actions))
    else:
        action = int(tf.argmax(model(tf.convert_to_tensor(state)[None], training=False)[0]))
    epsilon = max(epsilon - 0.9 / 1500, 0.1)
    state_next = np.roll(state, -1, axis=2)  # the env: a new frame stacked on the last three
    state_next[..., -1] = rng.integers(0, 256, (84, 84), dtype=np.uint8)
    reward, done = float(rng.random() < 0.05), rng.random() < 0.01
    action_history.append(action)
    state_history.append(state)
    state_next_history.append(state_next)
    done_history.append(done)
    rewards_history.append(reward)
    state = state_next
    if frame_count % update_after_actions == 0 and len(done_history) > batch_size:
        t = time.perf_counter()
        indices = rng.choice(range(len(done_history)), size=batch_size)
        state_sample = np.array([state_history[i] for i in indices])
        state_next_sample = np.array([state_next_history[i] for i in indices])
        rewards_sample = [rewards_history[i] for i in indices]
        action_sample = [action_history[i] for i in indices]
        done_sample = tf.convert_to_tensor([float(done_history[i]) for i in indices])
        future_rewards = model_target.predict(state_next_sample, verbose=0)
        updated_q_values = rewards_sample + gamma * tf.reduce_max(future_rewards, axis=1)
        updated_q_values = updated_q_values * (1 - done_sample) - done_sample
        masks = tf.one_hot(action_sample, num_actions)
        with tf.GradientTape() as tape:
            q_values = model(state_sample)
            q_action = tf.reduce_sum(tf.multiply(q_values, masks), axis=1)
            loss = loss_function(updated_q_values, q_action)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        step_secs.append(time.perf_counter() - t)
    if frame_count % update_target_network == 0:
        model_target.set_weights(model.get_weights())
    if len(rewards_history) > max_memory_length:
        del rewards_history[:1]
        del state_history[:1]
        del state_next_history[:1]
        del action_history[:1]
        del done_history[:1]
    if frame_count % 300 == 0:
        rss.append(round(_hook._rss_mib()))
        secs.append(round(1000 * float(np.mean(step_secs))))
        step_secs = []
print(
    f"TRUTH every 300 frames: RSS {rss} MiB, ms per train step {secs}; buffer {len(state_history)} transitions"
)
