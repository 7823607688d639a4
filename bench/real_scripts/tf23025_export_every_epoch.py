# Source: https://github.com/tensorflow/tensorflow/issues/23025 ("Keras saved_model.simple_save
# model bigger and bigger": a SavedModel exported again and again during training) and
# https://github.com/tensorflow/tensorflow/issues/32234 ("Keras model save load memory leakage").
# A TF2/Keras 3 form: a callback that exports a serving SavedModel every epoch,
# `model.export(f"export/{epoch}")` (each export traces the model's serving function anew, and
# writes a new directory), 14 epochs of a small Keras MLP. `RS_ONE=1`: one export directory,
# overwritten each epoch (`export/latest`, removed first).
# Truth (printed): export directories left, their size, the seconds the exports took, RSS.
import os
import shutil
import tempfile
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import keras
import numpy as np

ONE = os.environ.get("RS_ONE") == "1"
d = tempfile.mkdtemp(prefix="rs_23025_")
rng = np.random.default_rng(0)
x = rng.random((4096, 128), dtype=np.float32)
y = (x @ rng.standard_normal((128, 1))).astype("float32")
model = keras.Sequential(
    [
        keras.Input((128,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dense(1),
    ]
)
model.compile("adam", "mse")


class Export(keras.callbacks.Callback):
    seconds = 0.0

    def on_epoch_end(self, epoch, logs=None):
        t0 = time.perf_counter()
        out = os.path.join(d, "export", "latest" if ONE else f"{epoch:03d}")
        if ONE and os.path.exists(out):
            shutil.rmtree(out)
        self.model.export(out, verbose=False)
        Export.seconds += time.perf_counter() - t0


_hook.mark()
model.fit(x, y, epochs=14, batch_size=64, callbacks=[Export()], verbose=0)
sizes = [
    sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(os.path.join(d, "export", e)) for f in fs)
    for e in os.listdir(os.path.join(d, "export"))
]
print(
    f"TRUTH {'one export dir' if ONE else 'an export dir per epoch'}: {len(sizes)} dirs, "
    f"{sum(sizes) / 2**20:.1f} MiB ({sizes[0] / 2**20:.2f} MiB each); exports took {Export.seconds:.1f} s"
)
