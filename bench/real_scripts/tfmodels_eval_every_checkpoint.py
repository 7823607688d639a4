# Source: tensorflow/models research/object_detection (`model_main_tf2.py --checkpoint_dir=...`:
# an evaluator process that waits for each new checkpoint of a training job
# (`tf.train.checkpoints_iterator`), restores it and evaluates; tensorflow/models#9231 "checkpoint
# won't load for training but will for evaluation") and keras#10426-style "pick the best epoch
# afterwards" scripts: a first process trains an MLP for 10 epochs with
# `ModelCheckpoint("ckpt/e{epoch:02d}.weights.h5", save_weights_only=True)` (one file an epoch,
# kept on purpose); this process is the evaluator: it builds and compiles the model once, then
# for each checkpoint file in order calls `model.load_weights(f)` and `model.evaluate(x_val,
# y_val)`, and reports the best epoch. A healthy restore-and-inference loop: ten different
# files, one model, no training here (nothing to resume, no optimizer state needed).
# Truth: val_loss per checkpoint and the best (printed plain).
import glob
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_evalckpt_")
d = os.path.join(os.environ["RS_DIR"], "ckpt")
rng = np.random.default_rng(9231)
x = rng.standard_normal((8000, 30)).astype(np.float32)
y = (np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.3 * rng.standard_normal(8000)).astype(np.float32)[:, None]
x_val, y_val = x[6000:], y[6000:]


def build():
    model = keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    return model


if sys.argv[1:] == ["train"]:
    os.makedirs(d, exist_ok=True)
    cb = keras.callbacks.ModelCheckpoint(os.path.join(d, "e{epoch:02d}.weights.h5"), save_weights_only=True)
    build().fit(x[:6000], y[:6000], epochs=10, batch_size=64, callbacks=[cb], verbose=0)
    sys.exit(0)

hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'train']; runpy.run_path({__file__!r}, run_name='__main__')"
)
subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"))
model = build()
_hook.mark()
scores = {}
for f in sorted(glob.glob(os.path.join(d, "*.weights.h5"))):
    model.load_weights(f)
    scores[os.path.basename(f)] = round(model.evaluate(x_val, y_val, verbose=0, batch_size=256), 4)
best = min(scores, key=scores.get)
print(
    f"TRUTH val_loss per checkpoint {list(scores.values())}; best {best}; RSS {_hook._rss_mib():.0f} MiB",
    file=sys.stderr,
)
