# Source: https://github.com/keras-team/keras/issues/17012 (tensorflow#57667, tf-keras#430:
# "ModelCheckpoint used with `save_best_only` doesn't handle interruptions, even with
# BackupAndRestore": after a restart the callback's `best` is back at inf, so the resumed run's
# first epoch overwrites the best file with a worse model; keras#11420 and keras#12803 the same
# without BackupAndRestore). The user's callbacks: BackupAndRestore, ModelCheckpoint(
# "best.weights.h5", save_best_only=True, save_weights_only=True), CSVLogger(append=True).
# A first process (started by this script, hooked when this one is) trains a model that starts
# to overfit (small noisy training set) and dies at epoch 7 (an InterruptingCallback raises, as
# in keras#19179); this process runs the same script again, which resumes from the backup and
# finishes the 12 planned epochs. `RS_THRESHOLD=1`: the fix Keras added for it
# (`initial_value_threshold=` the best val_loss in the CSV log).
# Truth (printed): the best val_loss before the interruption, the val_loss of the model the best
# file holds at the end (evaluated), and whether a worse model replaced the best one.
import csv
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

THRESHOLD = os.environ.get("RS_THRESHOLD") == "1"
if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_17012_")
d = os.environ["RS_DIR"]
best_path, log_path = os.path.join(d, "best.weights.h5"), os.path.join(d, "log.csv")
rng = np.random.default_rng(3)
w = rng.standard_normal((64, 1)).astype("float32")
x = rng.random((1200, 64), dtype=np.float32)
y = (x @ w + 0.8 * rng.standard_normal((1200, 1))).astype("float32")
xv = rng.random((2000, 64), dtype=np.float32)
yv = (xv @ w).astype("float32")


class InterruptingCallback(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 7:
            raise RuntimeError("Interrupting!")


def build():
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    return model


def logged_best():
    with open(log_path) as f:
        return min(float(r["val_loss"]) for r in csv.DictReader(f))


def train(first):
    model = build()
    kw = {"initial_value_threshold": logged_best()} if THRESHOLD and not first else {}
    cbs = [
        keras.callbacks.BackupAndRestore(backup_dir=os.path.join(d, "backup")),
        keras.callbacks.ModelCheckpoint(best_path, save_best_only=True, save_weights_only=True, **kw),
        keras.callbacks.CSVLogger(log_path, append=True),
    ]
    if first:
        cbs.append(InterruptingCallback())
    h = model.fit(x, y, validation_data=(xv, yv), epochs=12, batch_size=32, callbacks=cbs, verbose=0)
    return model, h


if sys.argv[1:] == ["first"]:
    train(first=True)  # raises at epoch 7: exit 1, as a killed job would
hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'first']; runpy.run_path({__file__!r}, run_name='__main__')"
)
rc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PLAIN="1")).returncode
best_before = logged_best()
_hook.mark()
model, h = train(first=False)
resumed = [round(v, 4) for v in h.history["val_loss"]]
check = build()
check.load_weights(best_path)
held = check.evaluate(xv, yv, verbose=0)
print(
    f"TRUTH first process exit {rc}; best val_loss before the interruption {best_before:.4f}; "
    f"resumed epochs' val_loss {resumed}; the best file now holds val_loss {held:.4f} "
    f"({'a WORSE model overwrote the best' if held > best_before * 1.001 else 'the best kept'})"
)
