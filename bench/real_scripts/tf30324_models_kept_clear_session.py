# Source: https://github.com/tensorflow/tensorflow/issues/30324 ("Memory leak in eager mode when
# creating keras model in loop") and its many "clear_session() does not help" follow-ups, e.g.
# https://github.com/keras-team/keras/issues/13118 and tensorflow#61791 (session 1's
# clear_session_gc_loop). The shape here is the ensembling variant users post: a loop over seeds /
# configurations that calls `keras.backend.clear_session()` and `gc.collect()` at the top of every
# round, builds and fits a model, and appends the trained model to a list for a final ensemble
# prediction. clear_session() cannot free models the list still holds (their weights and
# optimizer state: a Dense 784-1024-1024-10 MLP, 1.9M weights, ~22 MiB with Adam's moments).
# 14 rounds of 3 epochs on 4,096 rows.
# RS_BEST=1: the twin that keeps only the best model so far (the list replaced by one slot).
# RS_WEIGHTS=1: keeps `model.get_weights()` (numpy copies, 7.5 MiB a round) instead of the model.
# RS_REUSE=1: the fix the finding offers: one model built before the loop, its initial weights
# restored (`set_weights(w0)`) and a fresh optimizer compiled each round, weights kept as numpy.
# Truth: RSS after each round (printed by the plain run). Measured here (TF 2.21, Keras 3.15):
# RSS grows ~30 MiB a round in the default *and* in RS_BEST=1 (weakrefs show every dropped model
# freed: the fit's memory stays in TF's runtime after clear_session()), so the list is not what
# grows the process here.
import gc
import os

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

BEST = os.environ.get("RS_BEST") == "1"
WEIGHTS = os.environ.get("RS_WEIGHTS") == "1" or os.environ.get("RS_REUSE") == "1"
REUSE = os.environ.get("RS_REUSE") == "1"
rng = np.random.default_rng(30324)
x, y = rng.random((4096, 784), dtype=np.float32), rng.integers(0, 10, 4096)
xt = rng.random((512, 784), dtype=np.float32)
kept, best, rss = [], (None, 1e9), []
_hook.mark()


def build():
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


if REUSE:
    model = build()
    w0 = model.get_weights()
for seed in range(14):
    keras.utils.set_random_seed(seed)
    if REUSE:
        model.set_weights(w0)
    else:
        keras.backend.clear_session()
        gc.collect()
        model = build()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(x, y, batch_size=128, epochs=3, verbose=0)
    loss = hist.history["loss"][-1]
    if BEST:
        if loss < best[1]:
            best = (model, loss)
    elif WEIGHTS:
        kept.append(model.get_weights())
    else:
        kept.append(model)
    rss.append(round(_hook._rss_mib()))
if not (BEST or WEIGHTS):
    ensemble = np.mean([m.predict(xt, verbose=0) for m in kept], axis=0)
print(f"TRUTH best={BEST} weights={WEIGHTS} reuse={REUSE}; kept {len(kept)}; RSS MiB after each round {rss}")
