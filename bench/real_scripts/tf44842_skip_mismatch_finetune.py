# Source: https://github.com/tensorflow/tensorflow/issues/44842 ("Error while trying to load
# model's weights for fine-tuning (transfer learning)": train on MNIST's 10 classes, then a model
# for another task with 5 classes, `model.load_weights(path, by_name=True, skip_mismatch=True)`)
# and keras#8462 / keras-retinanet#226 (skip_mismatch for a new number of classes). A first
# process (started by this script, hooked when this one is) trains a 784-512-256-10 MLP for 6
# epochs and saves `.weights.h5`; this process builds the same network with a 5-class head,
# `load_weights(skip_mismatch=True)` (Keras 3: the head's kernel and bias are skipped with a
# warning, the two hidden layers restored), compiles a new Adam and trains 8 epochs on the new
# task. The loss restarts from ln(5) (a new head on a new task), on purpose.
# RS_SAME=1: the same 10-class task and head (a plain restore of every weight, a new optimizer).
# Truth: which layers were restored (compared to the saved weights), first and last losses of
# each phase.
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import h5py
import keras
import numpy as np

SAME = os.environ.get("RS_SAME") == "1"
if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_44842_")
path = os.path.join(os.environ["RS_DIR"], "mnist.weights.h5")
rng = np.random.default_rng(44842)
protos = rng.random((10, 784), dtype=np.float32)
y10 = rng.integers(0, 10, 8192)
x = np.clip(protos[y10] + 2.5 * rng.standard_normal((8192, 784)).astype("float32"), 0, 1)


def build(classes):
    return keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(512, activation="relu", name="dense_1"),
            keras.layers.Dense(256, activation="relu", name="dense_2"),
            keras.layers.Dense(classes, name="head"),
        ]
    )


loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
if sys.argv[1:] == ["pretrain"]:
    model = build(10)
    model.compile("adam", loss, metrics=["accuracy"])
    h = model.fit(x, y10, batch_size=64, epochs=6, verbose=0)
    model.save_weights(path)
    print(f"TRUTH pretrain losses {[round(v, 3) for v in h.history['loss']]}", file=sys.stderr)
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'pretrain']; runpy.run_path({__file__!r}, run_name='__main__')"
)
subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"))

classes = 10 if SAME else 5
y = y10 if SAME else (y10 * 7 + 3) % 5  # the new task: 5 classes over the same inputs
model = build(classes)
model.load_weights(path, skip_mismatch=not SAME)
_hook.mark()
with h5py.File(path) as f:  # the saved weights (Keras 3 names them dense, dense_1, ...), no second restore
    saved = [[f[f"layers/{k}/vars/{i}"][()] for i in range(2)] for k in f["layers"]]
restored = [
    layer.name
    for layer, s in zip(model.layers, saved, strict=True)
    if all(v.shape == w.shape and np.array_equal(v, w) for v, w in zip(layer.get_weights(), s, strict=True))
]
model.compile(keras.optimizers.Adam(1e-4), loss, metrics=["accuracy"])
h = model.fit(x, y, batch_size=64, epochs=8, verbose=0)
print(
    f"TRUTH same={SAME}: restored layers {restored} of {[layer.name for layer in model.layers]}; fine-tune losses "
    f"{[round(v, 3) for v in h.history['loss']]}",
    file=sys.stderr,
)
