# Source: https://github.com/tensorflow/tensorflow/issues/30324 (memory grows with every model
# built in a loop, clear_session() or not) and the answer given there and in keras-tuner /
# Stack Overflow threads: run each trial in its own process (`multiprocessing` with the 'spawn'
# start method), the only way to get all of TF's memory back; it is also models_in_loop's own
# fix. A random search of 5 trials (units, dropout, learning rate), each trial a new process
# (`get_context('spawn').Pool(1)`) that builds, fits 3 epochs and returns its best val_loss.
# Healthy: the parent stays flat, each child exits. (Each child pays TF's import: that is the
# price of the fix.)
# Truth: the parent's RSS after each trial, each trial's best val_loss.
import multiprocessing as mp
import os
import sys

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1 (the spawned children too)


def train_trial(params):
    import keras
    import numpy as np

    units, dropout, lr = params
    rng = np.random.default_rng(30324)
    x = rng.standard_normal((6000, 32)).astype("float32")
    y = (x[:, :4].sum(axis=1) > 0).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(keras.optimizers.Adam(lr), "binary_crossentropy")
    h = model.fit(x, y, epochs=3, batch_size=32, validation_split=0.2, verbose=0)
    return round(min(h.history["val_loss"]), 4)


if __name__ == "__main__":
    _hook.mark()
    rng = __import__("random").Random(30324)
    trials = [(rng.choice([32, 64, 128]), rng.choice([0.0, 0.2]), rng.choice([1e-3, 3e-3])) for _ in range(5)]
    ctx = mp.get_context("spawn")
    rss, results = [], []
    for params in trials:
        with ctx.Pool(1) as pool:
            results.append(pool.apply(train_trial, (params,)))
        with open("/proc/self/statm") as f:
            rss.append(int(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20))
    print(
        f"TRUTH {len(trials)} trials {trials}; best val_loss {results}; parent RSS after each {rss} MiB",
        file=sys.stderr,
    )
