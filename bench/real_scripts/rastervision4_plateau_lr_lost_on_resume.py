# Source: https://github.com/azavea/raster-vision/issues/4 ("Resuming training does not take into
# account the last used learning rate": "we resume training from saved files by getting the last
# epoch number from `log.txt` and then use that as the `initial_epoch` argument to
# `fit_generator`. But that doesn't take into account the latest learning rate that was being
# used, which could have been set by the `ReduceLROnPlateau` callback"), matterport/Mask_RCNN#681
# ("when you change the learning rate on a job, the loss function suddenly goes into the roof")
# and IntelLabs/distiller#145 ("When I resumed the training from checkpoint, the learning rate
# has been reset to its initial learning value"). The Keras shape: a first process fits with
# `Adam(1e-2)`, `ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=2)`,
# `ModelCheckpoint("last.weights.h5", save_weights_only=True)` and `CSVLogger`; it stops after
# 16 epochs (the job's time limit). This process resumes as the issue does: the same `build()`
# (compile with `Adam(1e-2)`), `load_weights`, the last epoch read from the CSV log,
# `fit(..., initial_epoch=16, epochs=28)` with the same callbacks: the rate is back at 1e-2
# (the plateau callback's reductions, and Adam's moments, are gone).
# RS_FIXED=1: `ModelCheckpoint("last.keras")` (the whole model) and `keras.models.load_model`:
# the reduced rate and the optimizer state come back with it.
# Truth: the first process' last rate and val_loss, the resumed process' rate and val_loss per
# epoch (printed plain).
import csv
import os
import subprocess
import sys
import tempfile
from typing import ClassVar

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

FIXED = os.environ.get("RS_FIXED") == "1"
if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_rv4_")
d = os.environ["RS_DIR"]
ckpt_path = os.path.join(d, "last.keras" if FIXED else "last.weights.h5")
log_path = os.path.join(d, "log.csv")
rng = np.random.default_rng(4)
x = rng.standard_normal((6000, 40)).astype(np.float32)
y = (np.tanh(x[:, :8]).sum(axis=1, keepdims=True) + 0.3 * rng.standard_normal((6000, 1))).astype(np.float32)
xv, yv = x[5000:], y[5000:]
x, y = x[:5000], y[:5000]


def build():
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((40,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    return model


def callbacks():
    return [
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.2, patience=2, verbose=0),
        keras.callbacks.ModelCheckpoint(ckpt_path, save_weights_only=not FIXED),
        keras.callbacks.CSVLogger(log_path, append=True),
    ]


if sys.argv[1:] == ["first"]:
    model = build()
    h = model.fit(x, y, validation_data=(xv, yv), epochs=16, batch_size=64, callbacks=callbacks(), verbose=0)
    print(
        f"first process: val_loss {[round(v, 4) for v in h.history['val_loss']]}, "
        f"rate at the end {float(model.optimizer.learning_rate):.2e}",
        file=sys.stderr,
    )
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'first']; runpy.run_path({__file__!r}, run_name='__main__')"
)
subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"))

with open(log_path) as f:
    rows = list(csv.DictReader(f))
last_epoch = int(rows[-1]["epoch"]) + 1
first_rate, first_val = float(rows[-1]["learning_rate"]), float(rows[-1]["val_loss"])
if FIXED:
    model = keras.models.load_model(ckpt_path)
else:
    model = build()
    model.load_weights(ckpt_path)
_hook.mark()
rate0 = float(model.optimizer.learning_rate)


class Rates(keras.callbacks.Callback):
    rates: ClassVar[list[str]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.rates.append(f"{float(self.model.optimizer.learning_rate):.1e}")


h = model.fit(
    x,
    y,
    validation_data=(xv, yv),
    initial_epoch=last_epoch,
    epochs=28,
    batch_size=64,
    callbacks=[*callbacks(), Rates()],
    verbose=0,
)
print(
    f"TRUTH fixed={FIXED}: first process ended at epoch {last_epoch}, rate {first_rate:.1e}, val_loss "
    f"{first_val:.4f}; resumed at rate {rate0:.1e}: val_loss {[round(v, 4) for v in h.history['val_loss']]}, "
    f"rates {Rates.rates}",
    file=sys.stderr,
)
