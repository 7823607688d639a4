# Source: https://github.com/keras-team/keras/issues/5223 ("Must call train_on_batch and
# predict_on_batch before starting threads") and keras#6938 / #5640 (models in threads, a Flask
# server beside training): the shape users post is a GUI / web app that starts `model.fit` in a
# `threading.Thread` so the main thread stays free, polls the training's progress (a callback
# writes it into a dict) and answers requests with `model.predict` on another, already trained
# model meanwhile. A 64-256-256-1 MLP, 32,768 rows, 12 epochs of 512 batches in the thread.
# RS_SERVE=0: the main thread only polls (sleeps), no predictions.
# RS_PROC=pool: the other shape (k-fold scripts that free memory between folds): 3 folds trained
# by a `multiprocessing` spawn Pool(1) (one worker runs them all; `with Pool` terminates it at
# the end), 6 epochs each, the parent only collects the scores.
# RS_PROC=spawn / RS_PROC=fork: one `multiprocessing.Process` per fold (spawn, or Linux's default
# fork: the child leaves by os._exit, no atexit), joined; exit code 0 each.
# Truth: epochs and steps each fit ran, the main thread's predict calls, RSS.
import multiprocessing as mp
import os
import sys
import threading
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

SERVE = os.environ.get("RS_SERVE", "1") == "1"
PROC = os.environ.get("RS_PROC", "")


def data(seed, n=4096):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 64), dtype=np.float32)
    return x, (x.sum(axis=1) > 32).astype("float32")


def build():
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return model


class Progress(keras.callbacks.Callback):
    def __init__(self, state):
        super().__init__()
        self.state = state

    def on_train_batch_end(self, batch, logs=None):
        self.state["steps"] += 1

    def on_epoch_end(self, epoch, logs=None):
        self.state["epochs"] += 1
        self.state["loss"] = round(float(logs["loss"]), 4)


def fold(k):
    x, y = data(k)
    model = build()
    h = model.fit(x, y, batch_size=64, epochs=6, verbose=0)
    print(f"TRUTH fold {k} pid {os.getpid()}: {len(h.history['loss'])} epochs", file=sys.stderr, flush=True)
    return k, round(h.history["loss"][-1], 4), len(h.history["loss"])


if __name__ == "__main__":
    if PROC:
        _hook.mark()
        if PROC == "pool":
            with mp.get_context("spawn").Pool(1) as pool:
                results = pool.map(fold, range(3))
        else:
            results = []
            for k in range(3):
                p = mp.get_context(PROC).Process(target=fold, args=(k,))
                p.start()
                p.join()
                results.append((k, p.exitcode))
        print(f"TRUTH proc={PROC}: folds {results}", file=sys.stderr)
        sys.exit(0)
    x, y = data(0, 32768)
    served = build()
    served.fit(x[:512], y[:512], epochs=1, verbose=0)
    model = build()
    _hook.mark()
    state = {"steps": 0, "epochs": 0, "loss": None}
    t = threading.Thread(
        target=model.fit,
        args=(x, y),
        kwargs=dict(batch_size=64, epochs=12, verbose=0, callbacks=[Progress(state)]),
    )
    t.start()
    requests, polls = 0, 0
    while t.is_alive():
        if SERVE:
            served.predict(x[requests % 4000 : requests % 4000 + 8], verbose=0)
            requests += 1
            time.sleep(0.05)
        else:
            time.sleep(0.5)
        polls += 1
    t.join()
    print(
        f"TRUTH serve={SERVE}: thread fit {state['epochs']} epochs, {state['steps']} steps, last loss "
        f"{state['loss']}; main thread: {requests} predict calls, {polls} polls; predict_function traces "
        f"{served.predict_function.experimental_get_tracing_count() if SERVE else 0}",
        file=sys.stderr,
    )
