"""A save the hook sees puts its directory under watch, from any code path.

A callback that saves weights into its own directory every batch (not a ModelCheckpoint,
so the fit's callbacks name no directory) grows it by megabytes an epoch: `disk_growth`.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import child_env, latest_findings, of_type, read_single_trace, run_python

SAVER = """
import os
import epochwatch.hook
import numpy as np, keras

class Saver(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.n = getattr(self, "n", 0) + 1
        self.model.save_weights(os.path.join("snapshots", f"w{self.n}.weights.h5"))

os.makedirs("snapshots", exist_ok=True)
x = np.random.rand(256, 128).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((128,)), keras.layers.Dense(512), keras.layers.Dense(1)])
model.compile("sgd", "mse")
model.fit(x, y, epochs=14, batch_size=32, verbose=0, callbacks=[Saver()])
"""


def test_a_callback_saving_into_its_own_directory_every_batch_is_disk_growth(tmp_path: Path) -> None:
    run_python(SAVER, tmp_path, env=child_env(tmp_path))
    records = read_single_trace(tmp_path)
    watched = [r for r in of_type(records, "watch") if r.get("role") == "checkpoint"]
    assert any(str(r.get("path", "")).endswith("snapshots") for r in watched), of_type(records, "watch")
    found = [f for f in latest_findings(records) if f["kind"] == "disk_growth"]
    assert found and "snapshots" in str(found[0].get("target")), latest_findings(records)
