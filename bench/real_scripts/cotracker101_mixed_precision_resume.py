# Source: https://github.com/facebookresearch/co-tracker/pull/101 ("Fix bug in
# resuming-from-checkpoint not working with mixed precision training": "Without the commit,
# resuming training from a checkpoint would induce a disruption in loss/accuracy curves ... the
# state_dict for the gradient scaler would also be saved into the checkpoint") and
# huggingface/transformers#11663 ("Save scaler state dict when checkpointing"), in Keras form
# (tensorflow#34406's `mixed_precision.set_global_policy("mixed_float16")` + `fit`): a first
# process trains an MLP under `mixed_float16` (Keras wraps Adam in a `LossScaleOptimizer` with a
# dynamic loss scale) with `ModelCheckpoint("last.keras")`, 8 epochs; this process sets the same
# policy, `keras.models.load_model("last.keras")` and goes on with `initial_epoch=8` to 16.
# Keras saves the LossScaleOptimizer's scale and step counter and Adam's moments in the .keras
# file: the healthy resume (a right tool says nothing).
# RS_WEIGHTS=1: the resumed process builds and compiles anew and calls `load_weights` on a
# `last.weights.h5` (the wrapped optimizer not built yet: its state, the loss scale with it,
# starts over).
# Truth: the loss scale and optimizer step before and after the restore, the losses (printed).
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

WEIGHTS = os.environ.get("RS_WEIGHTS") == "1"
keras.mixed_precision.set_global_policy("mixed_float16")
if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_ct101_")
d = os.environ["RS_DIR"]
path = os.path.join(d, "last.weights.h5" if WEIGHTS else "last.keras")
rng = np.random.default_rng(101)
x = rng.standard_normal((6000, 64)).astype(np.float32)
y = (np.argmax(x[:, :10] + 0.5 * rng.standard_normal((6000, 10)), axis=1)).astype("int64")


def build():
    keras.utils.set_random_seed(101)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
            keras.layers.Activation("softmax", dtype="float32"),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


def state(model):
    opt = model.optimizer
    scale = getattr(opt, "dynamic_scale", None)  # made when the optimizer is built
    return f"scale {'unbuilt' if scale is None else f'{float(scale):.0f}'}, step {int(opt.iterations)}"


cb = keras.callbacks.ModelCheckpoint(path, save_weights_only=WEIGHTS)
if sys.argv[1:] == ["first"]:
    model = build()
    h = model.fit(x, y, epochs=8, batch_size=64, callbacks=[cb], verbose=0)
    print(
        f"first process: {state(model)}; losses {[round(v, 4) for v in h.history['loss']]}", file=sys.stderr
    )
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'first']; runpy.run_path({__file__!r}, run_name='__main__')"
)
subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"))
if WEIGHTS:
    model = build()
    model.load_weights(path)
else:
    model = keras.models.load_model(path)
_hook.mark()
before = state(model)
h = model.fit(x, y, initial_epoch=8, epochs=16, batch_size=64, callbacks=[cb], verbose=0)
print(
    f"TRUTH weights={WEIGHTS}: after the restore {before} ({type(model.optimizer).__name__}); after the "
    f"resumed fit {state(model)}; resumed losses {[round(v, 4) for v in h.history['loss']]}",
    file=sys.stderr,
)
