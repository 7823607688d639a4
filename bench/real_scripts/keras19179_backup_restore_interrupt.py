# Source: https://github.com/keras-team/keras/issues/19179 ("BackupAndRestore callback does not work
# as in the example": the docs' example, an `InterruptingCallback` that raises at epoch 4, then
# `fit` again with `BackupAndRestore(backup_dir="/tmp/backup")`, expecting "only 6 more epochs").
# The interruption here is a real one: a first process (started by this script, hooked when this
# one is) trains with BackupAndRestore and dies at epoch 4 (the RuntimeError ends it, exit 1),
# and this process runs the same script again, which resumes from the backup and finishes the
# 12 planned epochs. The model has 1.3M weights so the backup (weights + Adam's moments) is
# ~15 MiB. RS_SAME=1: the docs' form, both fits in one process.
# Truth: epochs run by each fit (printed), the backup directory's size while it runs and after:
# BackupAndRestore deletes its backup once the fit completes, so the disk ends as it started.
# Nothing should be said about the disk (a backup that is rewritten, not piling up).
import os
import subprocess
import sys
import tempfile

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

if "RS_DIR" not in os.environ:
    os.environ["RS_DIR"] = tempfile.mkdtemp(prefix="rs_19179_")
backup_dir = os.path.join(os.environ["RS_DIR"], "backup")
rng = np.random.default_rng(0)
x = rng.random((4000, 256), dtype=np.float32)
y = rng.integers(0, 10, 4000)


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**20


class InterruptingCallback(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 4:
            print(f"TRUTH interrupted at epoch 4, backup {du(backup_dir):.1f} MiB", flush=True)
            raise RuntimeError("Interrupting!")


def build():
    model = keras.Sequential(
        [
            keras.Input((256,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def train(interrupt):
    model = build()
    cbs = [keras.callbacks.BackupAndRestore(backup_dir=backup_dir)]
    if interrupt:
        cbs.append(InterruptingCallback())
    h = model.fit(x, y, epochs=12, batch_size=128, callbacks=cbs, verbose=0)
    print(f"TRUTH resumed fit ran {len(h.history['loss'])} epochs; backup after {du(backup_dir):.1f} MiB")


if sys.argv[1:] == ["first"]:
    train(interrupt=True)  # raises: the process ends with exit 1, as a killed job would
if os.environ.get("RS_SAME") == "1":
    _hook.mark()
    try:
        train(interrupt=True)
    except RuntimeError as e:
        print(e)
else:
    hooked = "import epochwatch.hook; " if "epochwatch.hook" in sys.modules else ""
    code = (
        f"{hooked}import runpy, sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
        f"sys.argv = [{__file__!r}, 'first']; runpy.run_path({__file__!r}, run_name='__main__')"
    )
    rc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PLAIN="1")).returncode
    print(f"TRUTH first process exit {rc}")
    _hook.mark()
train(interrupt=False)
