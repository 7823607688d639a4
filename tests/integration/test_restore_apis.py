"""Every Keras and TF save/restore path leaves a record, in one real TF process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import of_type, read_single_trace, run_python

pytestmark = pytest.mark.slow

SCRIPT = """
import epochwatch.hook
import numpy as np
import tensorflow as tf
import keras

x = np.random.rand(64, 4).astype("float32")
y = x.sum(axis=1, keepdims=True)

def build():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model

m = build()
m.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[
    keras.callbacks.ModelCheckpoint("cb.weights.h5", save_weights_only=True),
    keras.callbacks.BackupAndRestore("backup", delete_checkpoint=False),
])
keras.saving.save_model(m, "fn.keras")
m.save("legacy.h5")
keras.models.load_model("legacy.h5", compile=False)
ck = tf.train.Checkpoint(model=m, optimizer=m.optimizer)
saved = ck.save("ck/ckpt")
written = ck.write("ck/written")
ck.restore(saved)
ck.read(written)
manager = tf.train.CheckpointManager(ck, "mgr", max_to_keep=1)
manager.save()
manager.restore_or_initialize()
tf.saved_model.save(m, "sm")
tf.saved_model.load("sm")
other = build()  # a key renamed since the save (tensorflow#42272): its weights get nothing
tf.train.Checkpoint(renamed=other, optimizer=other.optimizer).restore(saved).expect_partial()

class Net(keras.Model):  # restored before it is built (tensorflow#39593): Keras 3 makes a new kernel
    def __init__(self):
        super().__init__()
        self.l1, self.out = keras.layers.Dense(4), keras.layers.Dense(1)
    def call(self, x):
        return self.out(self.l1(x))

built = Net()
built(x)
tf.train.Checkpoint(net=built).write("late/ck")
late = Net()
tf.train.Checkpoint(net=late).restore("late/ck")
late(x)  # built now: its first kernel never gets the saved value; said at the next epoch
resumed = build()
resumed.fit(x, y, epochs=3, batch_size=16, verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore("backup", delete_checkpoint=False)])
"""


def test_all_paths_are_recorded(tmp_path: Path) -> None:
    run_python(SCRIPT, tmp_path, timeout=120)
    records = read_single_trace(tmp_path)
    seen = [
        (r["type"], r["api"], r.get("via"), r["format"], Path(r["path"]).relative_to(tmp_path).as_posix())
        for r in records
        if r["type"] in ("save", "restore")
    ]
    assert seen == [
        ("save", "Model.save_weights", "ModelCheckpoint", "weights.h5", "cb.weights.h5"),
        ("save", "Model.save_weights", "BackupAndRestore", "weights.h5", "backup/latest.weights.h5"),
        ("save", "Model.save_weights", "ModelCheckpoint", "weights.h5", "cb.weights.h5"),
        ("save", "Model.save_weights", "BackupAndRestore", "weights.h5", "backup/latest.weights.h5"),
        ("save", "keras.saving.save_model", None, "keras", "fn.keras"),
        ("save", "Model.save", None, "h5", "legacy.h5"),
        ("restore", "keras.saving.load_model", None, "h5", "legacy.h5"),
        ("save", "tf.train.Checkpoint.save", None, "tf_checkpoint", "ck/ckpt-1"),
        ("save", "tf.train.Checkpoint.write", None, "tf_checkpoint", "ck/written"),
        ("restore", "tf.train.Checkpoint.restore", None, "tf_checkpoint", "ck/ckpt-1"),
        ("restore", "tf.train.Checkpoint.read", None, "tf_checkpoint", "ck/written"),
        ("save", "tf.train.CheckpointManager.save", "CheckpointManager", "tf_checkpoint", "mgr/ckpt-2"),
        ("restore", "tf.train.Checkpoint.restore", "CheckpointManager", "tf_checkpoint", "mgr/ckpt-2"),
        ("save", "tf.saved_model.save", None, "saved_model", "sm"),
        ("restore", "tf.saved_model.load", None, "saved_model", "sm"),
        ("restore", "tf.train.Checkpoint.restore", None, "tf_checkpoint", "ck/ckpt-1"),
        ("save", "tf.train.Checkpoint.write", None, "tf_checkpoint", "late/ck"),
        ("restore", "tf.train.Checkpoint.restore", None, "tf_checkpoint", "late/ck"),
        ("restore", "Model.load_weights", "BackupAndRestore", "weights.h5", "backup/latest.weights.h5"),
        ("save", "Model.save_weights", "BackupAndRestore", "weights.h5", "backup/latest.weights.h5"),
    ]
    saves_restores = [r for r in records if r["type"] in ("save", "restore")]
    assert all(len(r["sha256"]) == 64 and r["bytes"] > 0 for r in saves_restores)
    legacy = next(r for r in saves_restores if r["type"] == "restore" and r["format"] == "h5")
    assert legacy["written_with"] == {"keras": legacy_keras(records), "backend": "tensorflow"}
    tf_ck = next(r for r in saves_restores if r["format"] == "tf_checkpoint")
    assert tf_ck["files"] == 2 and tf_ck["optimizer_included"] is True and tf_ck["file_iterations"] == 8
    sm = next(r for r in saves_restores if r["format"] == "saved_model")
    assert sm["written_with"]["tensorflow"] == records[0]["env"]["packages"]["tensorflow"]
    # BackupAndRestore resumed the second fit from its own backup: the bytes of its last save
    backup_saves = [r for r in saves_restores if r["type"] == "save" and r.get("via") == "BackupAndRestore"]
    backup_restore = next(
        r for r in saves_restores if r["type"] == "restore" and r.get("via") == "BackupAndRestore"
    )
    assert backup_restore["sha256"] == backup_saves[1]["sha256"]
    # What the manager keeps (its own attribute is private): a fix never tells it to keep fewer.
    manager_saves = [r for r in saves_restores if r["type"] == "save" and r.get("via") == "CheckpointManager"]
    assert manager_saves and all(r["keeps"] == {"max_to_keep": 1} for r in manager_saves), manager_saves
    assert not of_type(records, "notice")
    # What a restore left at its initial values: nothing, but under a renamed key.
    tf_restores = [r for r in saves_restores if r["type"] == "restore" and r["format"] == "tf_checkpoint"]
    assert [r.get("unmatched") for r in tf_restores[:3]] == [None, None, None]
    missed = tf_restores[3]["unmatched"]
    assert missed["keys"] == ["renamed"] and missed["file_keys_unused"] == ["model"], missed
    assert missed["variables"] == 4 and missed["parameters"] == 25, missed
    said, late = [f for f in of_type(records, "finding") if f["kind"] == "weights_not_restored"]
    assert "`renamed`" in said["title"] and "`model` matched nothing" in said["title"], said
    # ... and one that matched all it held at the restore, then left a variable made after it.
    assert tf_restores[4].get("unmatched") is None and late["target"].endswith("late/ck"), late
    assert late["evidence"]["paths"] == ["net/l1/_kernel"] and "holds values for them" in late["title"], late


def legacy_keras(records: list[dict]) -> str:
    return str(records[0]["env"]["packages"]["keras"])
