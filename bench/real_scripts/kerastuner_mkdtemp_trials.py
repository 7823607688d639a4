# Source: https://github.com/keras-team/keras-tuner/issues/338-style hand-written searches (and
# autokeras#1262: "the model is ... written to disk at some point"): a random search written by
# hand, each trial in a directory of its own from `tempfile.mkdtemp()` that is never removed:
# `ModelCheckpoint(os.path.join(trial_dir, "best.keras"), save_best_only=True)` plus the trial's
# exported model (`model.save(trial_dir + "/final.keras")`). 14 trials of 3 epochs, the model
# ~1.1M weights, so each trial leaves ~26 MiB in /tmp.
# RS_SNAPSHOT=1: instead each trial's input pipeline is `tf.data.Dataset.snapshot(trial_dir)`
# (the data written anew per trial, ~31 MiB each). RS_CLEAN=1: the healthy twin, each trial in a
# `tempfile.TemporaryDirectory()` (removed when the trial ends).
# Truth: /tmp's growth per trial (printed by the plain run). Hundreds of MiB that a sweep of
# hundreds of trials would make GiB: it should be said (disk_growth on the temp dir, by trial),
# with a fix the script doesn't already do; the clean twin quiet.
import os
import shutil
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
import tensorflow as tf

SNAP = os.environ.get("RS_SNAPSHOT") == "1"
CLEAN = os.environ.get("RS_CLEAN") == "1"
rng = np.random.default_rng(0)
x = rng.random((4000, 2048), dtype=np.float32)
y = rng.integers(0, 2, 4000)


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**20


def trial(trial_dir, units, lr):
    model = tf.keras.Sequential(
        [
            tf.keras.Input((2048,)),
            tf.keras.layers.Dense(units, activation="relu"),
            tf.keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(tf.keras.optimizers.Adam(lr), "binary_crossentropy", metrics=["accuracy"])
    if SNAP:
        ds = tf.data.Dataset.from_tensor_slices((x, y)).snapshot(trial_dir).batch(128)
        h = model.fit(ds, epochs=3, verbose=0)
    else:
        ckpt = tf.keras.callbacks.ModelCheckpoint(
            os.path.join(trial_dir, "best.keras"), monitor="val_loss", save_best_only=True
        )
        h = model.fit(x, y, epochs=3, batch_size=128, validation_split=0.2, callbacks=[ckpt], verbose=0)
        model.save(os.path.join(trial_dir, "final.keras"))
    return min(h.history["loss"])


_hook.mark()
ours, results = [], []
for t in range(14):
    units, lr = [512, 544][t % 2], [1e-3, 3e-4][t % 3 % 2]
    if CLEAN:
        with tempfile.TemporaryDirectory(prefix="rs_trial_") as d:
            results.append(trial(d, units, lr))
            ours.append(0.0)
    else:
        d = tempfile.mkdtemp(prefix="rs_trial_")
        results.append(trial(d, units, lr))
        ours.append(round(du(d), 1))
print(
    f"TRUTH trial dirs left in /tmp: MiB each {ours}, total {sum(ours):.0f} MiB; best loss {min(results):.4f}"
)
if (
    os.environ.get("RS_KEEP_TMP") != "1" and not CLEAN
):  # tidy the box after measuring (after the hook's last epoch)
    for d in os.listdir(tempfile.gettempdir()):
        if d.startswith("rs_trial_"):
            shutil.rmtree(os.path.join(tempfile.gettempdir(), d), ignore_errors=True)
