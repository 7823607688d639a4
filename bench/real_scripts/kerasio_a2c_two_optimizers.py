# Source: the Keras example "Actor Critic Method" (keras-io examples/rl/actor_critic_cartpole.py)
# and its many forks in issues (e.g. keras-io#1232, tf#46203 "two optimizers for actor and critic
# in a custom loop"): separate actor and critic networks, each with its own Adam, updated once per
# step inside one `@tf.function` (two `apply_gradients` per step). The environment is a synthetic
# CartPole-shaped one (4 floats of state, 2 actions), batched: 64 rollouts of 32 steps per
# training step, 60 training steps an "episode block", 8 blocks the script marks itself as epochs
# with its own logging (it does not call hook.epoch()).
# RS_ONE=1: one model with two heads and one optimizer (one apply_gradients per step).
# Truth: training steps per block (60), each optimizer's iterations, block times.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

ONE = os.environ.get("RS_ONE") == "1"
rng = np.random.default_rng(1232)
W = rng.standard_normal((4, 4)).astype("float32") * 0.3


def mlp(out):
    return tf.keras.Sequential(
        [tf.keras.Input((4,)), tf.keras.layers.Dense(128, activation="relu"), tf.keras.layers.Dense(out)]
    )


if ONE:
    inp = tf.keras.Input((4,))
    h = tf.keras.layers.Dense(128, activation="relu")(inp)
    both = tf.keras.Model(inp, [tf.keras.layers.Dense(2)(h), tf.keras.layers.Dense(1)(h)])
    opt = tf.keras.optimizers.Adam(1e-3)
else:
    actor, critic = mlp(2), mlp(1)
    a_opt, c_opt = tf.keras.optimizers.Adam(1e-3), tf.keras.optimizers.Adam(5e-3)
_hook.mark()
w = tf.constant(W)


@tf.function
def train_step(s0):
    _states, rewards, logps, values = [], [], [], []
    with tf.GradientTape(persistent=True) as tape:
        s = s0
        for _t in range(32):
            logits, v = both(s) if ONE else (actor(s), critic(s))
            a = tf.random.categorical(logits, 1)[:, 0]
            logps.append(tf.gather(tf.nn.log_softmax(logits), a, batch_dims=1))
            values.append(v[:, 0])
            s = tf.tanh(s @ w + tf.cast(a[:, None], tf.float32) * 0.1)
            rewards.append(1.0 - tf.abs(s[:, 0]))
        ret, returns = tf.zeros_like(rewards[0]), []
        for r in reversed(rewards):
            ret = r + 0.99 * ret
            returns.insert(0, ret)
        returns, logps, values = tf.stack(returns), tf.stack(logps), tf.stack(values)
        adv = tf.stop_gradient(returns - values)
        actor_loss = -tf.reduce_mean(logps * adv)
        critic_loss = tf.reduce_mean(tf.square(returns - values))
        total = actor_loss + 0.5 * critic_loss
    if ONE:
        opt.apply_gradients(
            zip(tape.gradient(total, both.trainable_variables), both.trainable_variables, strict=False)
        )
    else:
        a_opt.apply_gradients(
            zip(tape.gradient(actor_loss, actor.trainable_variables), actor.trainable_variables, strict=False)
        )
        c_opt.apply_gradients(
            zip(
                tape.gradient(critic_loss, critic.trainable_variables),
                critic.trainable_variables,
                strict=False,
            )
        )
    return tf.reduce_mean(rewards)


times, iters = [], []
for block in range(8):
    t0 = time.perf_counter()
    for _ in range(60):
        reward = train_step(tf.random.normal((64, 4)))
    times.append(round(time.perf_counter() - t0, 2))
    iters.append(int(opt.iterations) if ONE else (int(a_opt.iterations), int(c_opt.iterations)))
    print(f"block {block}: reward {float(reward):.3f}", file=sys.stderr)
print(
    f"TRUTH one={ONE}: 60 steps per block; optimizer iterations after each block {iters}; block s {times}",
    file=sys.stderr,
)
