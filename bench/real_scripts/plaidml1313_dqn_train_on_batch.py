# Source: https://github.com/plaidml/plaidml/issues/1313 ("RAM memory increasing when use
# model.fit, model.train_on_batch, model.predict or model.predict_on_batch in loop ...
# usually when we work with deep q-learning"): a DQN-shaped loop, an action from
# predict_on_batch every step and a train_on_batch on a replay minibatch, 20 episodes.
# Truth (TF 2.21 / Keras 3): measured by the runner.
import collections
import random

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from tensorflow import keras

model = keras.Sequential(
    [
        keras.Input((8,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(4),
    ]
)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
_hook.mark()
memory = collections.deque(maxlen=5000)
rng = np.random.default_rng(0)
for episode in range(20):
    state = rng.random(8, dtype=np.float32)
    for _t in range(100):
        q = model.predict_on_batch(state[None])
        action = int(np.argmax(q[0])) if rng.random() > 0.1 else int(rng.integers(4))
        next_state, reward = rng.random(8, dtype=np.float32), float(rng.random())
        memory.append((state, action, reward, next_state))
        state = next_state
        if len(memory) >= 64:
            batch = random.sample(memory, 64)
            states = np.array([b[0] for b in batch])
            targets = model.predict_on_batch(states)
            targets[np.arange(64), [b[1] for b in batch]] = [b[2] for b in batch]
            model.train_on_batch(states, targets)
    print("episode", episode)
