# Source: https://github.com/tensorflow/tensorflow/issues/35634 ("EarlyStopping should restore
# weights on end of training": the thread's point that "the user may want to continue training
# after" a fit) and https://github.com/keras-team/keras/issues/12511. A first process (started by
# this script, hooked when this one is) fits with `EarlyStopping(patience=4,
# restore_best_weights=True)` and `ReduceLROnPlateau(patience=2, factor=0.3)` on a small noisy
# training set (it overfits: the training loss keeps falling while val_loss rises), then
# `model.save("model.keras")`: the file holds the best epoch's weights but the optimizer as it
# was at the last epoch (its step count and its reduced learning rate). This process loads it and
# trains on with the same callbacks from `initial_epoch` = where it stopped (a user continuing
# training, as in the thread). Healthy: the restored weights are the best epoch's on purpose,
# so the first loss after the resume is the best epoch's (higher than the last epoch's training
# loss); nothing is wrong with the restore.
# Truth (printed): the parent's best and last epochs, their training losses, the learning rate
# saved and the child's first loss and learning rate.
import json
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_35634_")
d = os.environ["RS_DIR"]
path = os.path.join(d, "model.keras")
rng = np.random.default_rng(3)
w = rng.standard_normal((64, 1)).astype("float32")
x = rng.random((1200, 64), dtype=np.float32)
y = (x @ w + 0.8 * rng.standard_normal((1200, 1))).astype("float32")
xv = rng.random((2000, 64), dtype=np.float32)
yv = (xv @ w).astype("float32")


def callbacks():
    return [
        keras.callbacks.EarlyStopping(patience=4, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(patience=2, factor=0.3),
    ]


if sys.argv[1:] == ["first"]:
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
    h = model.fit(x, y, validation_data=(xv, yv), epochs=40, batch_size=32, callbacks=callbacks(), verbose=0)
    model.save(path)
    vl, lo = h.history["val_loss"], h.history["loss"]
    best = int(np.argmin(vl))
    info = {
        "epochs": len(lo),
        "best": best + 1,
        "best_loss": round(lo[best], 4),
        "last_loss": round(lo[-1], 4),
        "lr_saved": float(model.optimizer.learning_rate),
        "steps_saved": int(model.optimizer.iterations),
        "restored_train_loss": round(float(model.evaluate(x, y, verbose=0)), 4),
    }
    with open(os.path.join(d, "first.json"), "w") as f:
        json.dump(info, f)
    sys.exit(0)
hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
code = (
    f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
    f"sys.argv = [{__file__!r}, 'first']; runpy.run_path({__file__!r}, run_name='__main__')"
)
subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PLAIN="1"))
with open(os.path.join(d, "first.json")) as f:
    first = json.load(f)
model = keras.models.load_model(path)
_hook.mark()
lr0 = float(model.optimizer.learning_rate)
h = model.fit(
    x,
    y,
    validation_data=(xv, yv),
    initial_epoch=first["epochs"],
    epochs=first["epochs"] + 8,
    batch_size=32,
    callbacks=callbacks(),
    verbose=0,
)
print(
    f"TRUTH parent: {first['epochs']} epochs, best epoch {first['best']} (train loss {first['best_loss']}), "
    f"last train loss {first['last_loss']}, saved lr {first['lr_saved']:.2e} at step {first['steps_saved']}, "
    f"restored weights' train loss {first['restored_train_loss']}; child: lr {lr0:.2e}, "
    f"first epoch loss {h.history['loss'][0]:.4f}, {len(h.history['loss'])} epochs"
)
