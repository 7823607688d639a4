# Source: https://github.com/keras-team/keras/issues/1872 ("resume training from previous epoch":
# "when I call model.fit() after loading models and weights, it showing epoch = 1. If I stop the
# training at 100 epoch, I want to resume the training with epoch=101"; answered "the label of
# `epoch` is only a name ... it should be no problem"), and what that costs with an epoch-indexed
# schedule: https://github.com/azavea/raster-vision/issues/4 ("Resuming training does not take
# into account the last used learning rate") and tensorflow#49208. A first process trains an MLP
# regressor 9 epochs with `LearningRateScheduler(lambda epoch: 0.01 * 0.5 ** (epoch // 3))` and
# `ModelCheckpoint` (a `.keras` file each epoch); this process then `load_model`s it and calls
# `fit(epochs=9)` with the same scheduler and no `initial_epoch`: the scheduler sees epoch 0 again
# and puts the rate back from 0.00125 to 0.01 (8x), on a model that had converged.
# RS_INITIAL=1: the twin, `fit(initial_epoch=9, epochs=18)` (the schedule goes on: 0.000156...).
# The first process is started by this script (hooked when this one is), as in
# keras13682_resume_second_process.py. Truth: the rate and loss of each epoch, both processes.
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

rng = np.random.default_rng(1872)
x = rng.random((8192, 32), dtype=np.float32)
y = (np.sin(3 * x[:, :8]).sum(1) + x[:, 8:] @ rng.random(24, dtype=np.float32)).astype(np.float32)
if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_1872_")
path = os.path.join(os.environ["RS_DIR"], "model_1872.keras")


def schedule(epoch):
    return 0.01 * 0.5 ** (epoch // 3)


rates = []


class Rate(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        rates.append(float(np.asarray(self.model.optimizer.learning_rate)))


if sys.argv[1:] == ["train"]:
    model = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), "mse")
    cbs = [keras.callbacks.LearningRateScheduler(schedule), keras.callbacks.ModelCheckpoint(path), Rate()]
    h = model.fit(x, y, batch_size=64, epochs=9, verbose=0, callbacks=cbs)
    print(
        f"first process: rates {[float(f'{r:.3g}') for r in rates]}, losses {[round(v, 4) for v in h.history['loss']]}"
    )
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'train']; runpy.run_path({__file__!r}, run_name='__main__')"
)
subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"))
model = keras.models.load_model(path)
_hook.mark()
initial = 9 if os.environ.get("RS_INITIAL") == "1" else 0
cbs = [keras.callbacks.LearningRateScheduler(schedule), keras.callbacks.ModelCheckpoint(path), Rate()]
h = model.fit(x, y, batch_size=64, epochs=initial + 9, initial_epoch=initial, verbose=0, callbacks=cbs)
print(
    f"TRUTH initial_epoch={initial}; resumed rates {[float(f'{r:.3g}') for r in rates]}, "
    f"losses {[round(v, 4) for v in h.history['loss']]}"
)
