# Source: https://github.com/keras-team/keras/issues/13682 ("Training start from scratch after
# load_model()"): a first process trains a stacked LSTM with `ModelCheckpoint(filepath,
# monitor='loss', save_best_only=True)`; a second process `load_model(filepath)` and goes on
# with `fit(..., initial_epoch=5)`. The first process is started by this script (hooked when
# this one is), so both write their traces in the same EPOCHWATCH_DIR. Default: the healthy
# resume (load_model keeps the optimizer's state: quiet). `RS_RECOMPILE=1`: the variant many
# users write (keras#13720), `model.compile(...)` again after loading: a fresh Adam, its moment
# estimates and step count lost (optimizer_state_not_restored expected). Synthetic data of the
# issue's shapes (x: (N, 10, 100), y: (N, 100)).
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import numpy as np
from keras.callbacks import ModelCheckpoint
from keras.layers import LSTM, Dense, Dropout, Input
from keras.models import Sequential, load_model

vec_size, n_units = 100, 32
rng = np.random.default_rng(0)
x_train = rng.random((3000, 10, vec_size), dtype=np.float32)
y_train = x_train.mean(axis=1) * 2.0 - 0.5 + 0.05 * rng.standard_normal((3000, vec_size)).astype("float32")
if "RS_DIR" not in os.environ:  # one temp dir for both processes
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_13682_")
filepath = os.path.join(os.environ["RS_DIR"], "model_13682.keras")

if sys.argv[1:] == ["train"]:
    model = Sequential(
        [
            Input((None, vec_size)),
            LSTM(n_units, return_sequences=True),
            Dropout(0.2),
            LSTM(n_units, return_sequences=True),
            Dropout(0.2),
            LSTM(n_units),
            Dropout(0.2),
            Dense(vec_size, activation="linear"),
        ]
    )
    model.compile(loss="mean_squared_error", optimizer="adam")
    checkpoint = ModelCheckpoint(filepath, monitor="loss", verbose=0, save_best_only=True, mode="min")
    h = model.fit(x_train, y_train, epochs=5, batch_size=50, callbacks=[checkpoint], verbose=0)
    print(f"first process losses {[round(v, 5) for v in h.history['loss']]}")
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'train']; runpy.run_path({__file__!r}, run_name='__main__')"
)
env = dict(os.environ, PLAIN="1")  # the child's hook (if any) comes from `hooked`, not _hook
subprocess.run([sys.executable, "-c", code], check=True, env=env)

new_model = load_model(filepath)
_hook.mark()
steps_loaded = int(new_model.optimizer.iterations.numpy())
if os.environ.get("RS_RECOMPILE") == "1":
    new_model.compile(loss="mean_squared_error", optimizer="adam")
checkpoint = ModelCheckpoint(filepath, monitor="loss", verbose=0, save_best_only=True, mode="min")
h = new_model.fit(
    x_train, y_train, epochs=10, initial_epoch=5, batch_size=50, callbacks=[checkpoint], verbose=0
)
print(
    f"TRUTH optimizer step after load_model {steps_loaded}, after the resumed fit "
    f"{int(new_model.optimizer.iterations.numpy())} (recompiled: {os.environ.get('RS_RECOMPILE') == '1'}); "
    f"resumed losses {[round(v, 5) for v in h.history['loss']]}"
)
