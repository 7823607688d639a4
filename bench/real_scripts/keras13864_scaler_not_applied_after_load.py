# Source: https://github.com/keras-team/keras/issues/13864 ("Model Accuracy: 80.60% but give bad
# result in real data": the script standardizes X with `mu_x = np.mean(X_train)`,
# `sigma_x = np.std(X_train)`, `X_train = (X_train - mu_x)/sigma_x`), and the many "model
# performs badly after load_model" threads (keras#9279, tf-keras#281) where the second process
# loads the model and feeds it raw, un-standardized data. A first process (started by this
# script, hooked when this one is) standardizes 12 features of very different scales with a
# manual mean/std, trains 6 epochs and saves `model.keras`; this process `load_model`s it and
# goes on training 4 epochs on new rows of the same distribution, then predicts.
# Default: the second process forgets the scaling (raw inputs, means 0-800, stds 1-200): the
# first loss after the restore jumps by orders of magnitude (input_distribution_shift expected,
# with the fix "apply the parent's statistics").
# RS_FIXED=1: the healthy twin: mean/std saved next to the model (np.savez) and applied again.
# RS_LAYER=1: the healthy twin with a `keras.layers.Normalization` adapted inside the model
# (raw inputs in both processes: nothing changed, quiet).
# RS_PREDICT=1: the second process only serves: 40 `predict` calls of 500 raw rows, no fit
# (the issue's own case: "give bad result in real data").
# Truth: the losses of both processes, printed by the plain run.
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

FIXED = os.environ.get("RS_FIXED") == "1"
LAYER = os.environ.get("RS_LAYER") == "1"
if "RS_DIR" not in os.environ:  # one temp dir for both processes
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_13864_")
path = os.path.join(os.environ["RS_DIR"], "model.keras")
scaler = os.path.join(os.environ["RS_DIR"], "scaler.npz")
means = np.linspace(0, 800, 12).astype("float32")
stds = np.geomspace(1, 200, 12).astype("float32")
w = np.random.default_rng(1).standard_normal(12).astype("float32")


def data(seed, n=20000):
    rng = np.random.default_rng(seed)
    x = means + stds * rng.standard_normal((n, 12)).astype("float32")
    z = (x - means) / stds
    y = (np.tanh(z @ w / 3) + 0.05 * rng.standard_normal(n)).astype("float32")
    return x, y


if sys.argv[1:] == ["train"]:
    x, y = data(0)
    if LAYER:
        norm = keras.layers.Normalization()
        norm.adapt(x)
        inputs = keras.Input((12,))
        h = norm(inputs)
    else:
        mu_x, sigma_x = x.mean(axis=0), x.std(axis=0)
        np.savez(scaler, mu=mu_x, sigma=sigma_x)
        x = (x - mu_x) / sigma_x
        inputs = keras.Input((12,))
        h = inputs
    h = keras.layers.Dense(64, activation="relu")(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    model = keras.Model(inputs, keras.layers.Dense(1)(h))
    model.compile("adam", "mse")
    hist = model.fit(x, y, epochs=6, batch_size=64, verbose=0)
    model.save(path)
    print(f"TRUTH first process losses {[round(v, 4) for v in hist.history['loss']]}")
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'train']; runpy.run_path({__file__!r}, run_name='__main__')"
)
subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"))

model = keras.models.load_model(path)
_hook.mark()
x_new, y_new = data(2)
if FIXED:
    s = np.load(scaler)
    x_new = (x_new - s["mu"]) / s["sigma"]
# default and RS_LAYER=1: the raw rows, as the second script feeds them
if os.environ.get("RS_PREDICT") == "1":
    errs = [
        float(np.mean((model.predict(x_new[i : i + 500], verbose=0)[:, 0] - y_new[i : i + 500]) ** 2))
        for i in range(0, 20000, 500)
    ]
    print(f"TRUTH served 40 predict calls on raw rows: MSE {np.mean(errs):.1f} (trained to ~0.004)")
    sys.exit(0)
hist = model.fit(x_new, y_new, epochs=4, batch_size=64, verbose=0)
pred = model.predict(x_new[:2000], verbose=0)[:, 0]
print(
    f"TRUTH resumed losses {[round(v, 4) for v in hist.history['loss']]};"
    f" prediction MSE after {np.mean((pred - y_new[:2000]) ** 2):.4f}"
)
