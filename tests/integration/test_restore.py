"""Restore diagnostics with real TensorFlow: one parent run, six resumes in fresh processes.

The parent trains a tiny model on standardized inputs and saves it three ways. Each child
resumes in a new interpreter (as a user would, with `import epochwatch.hook`) and the
findings written *during* the child run are checked, then the same runs are analyzed
offline (lineage + detector, as `report` does) to check both paths agree.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from epochwatch.analysis import restore as restore_analysis
from epochwatch.analysis.restore.lineage import build_lineage
from epochwatch.analysis.run import load_run
from epochwatch.trace.reader import iter_records
from tests.support import child_env, of_type, run_python, trace_files

pytestmark = pytest.mark.slow

RESTORE_KINDS = set(restore_analysis.KINDS)

PRELUDE = """
import epochwatch.hook
import numpy as np
import keras

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
raw = rng.normal(50.0, 10.0, size=(256, 4)).astype("float32")
y = (raw @ np.array([[0.03], [-0.02], [0.01], [0.02]], dtype="float32")).astype("float32")
scaled = (raw - raw.mean(axis=0)) / raw.std(axis=0)

def build(lr=0.01):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    return model
"""

PARENT = (
    PRELUDE
    + """
model = build()
model.fit(scaled, y, epochs=6, batch_size=32, verbose=0)
model.save_weights("w.weights.h5")
model.save("m.keras")
model.save("mod.keras")
"""
)


class Runs:
    """The shared work directory and the trace each script produced."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, code: str) -> list[dict[str, Any]]:
        before = set(trace_files(self.root))
        run_python(code, self.root, env=child_env(self.root), timeout=120)
        (new,) = set(trace_files(self.root)) - before
        return list(iter_records(new))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    r = Runs(tmp_path_factory.mktemp("restore"))
    r.parent = r.run(PARENT)  # type: ignore[attr-defined]
    return r


def parent_id(runs: Runs) -> str:
    return str(runs.parent[0]["run_id"])  # type: ignore[attr-defined]


def online_findings(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for f in of_type(records, "finding"):
        if f["kind"] in RESTORE_KINDS:
            assert f["kind"] not in found, f"{f['kind']} written twice"
            found[f["kind"]] = f
    return found


def offline_kinds(root: Path, run_id: str) -> set[str]:
    runs = [load_run(p) for p in trace_files(root)]
    lineage = build_lineage(runs)
    (child,) = [r for r in runs if r.run_id == run_id]
    return {f.kind for f in restore_analysis.detect(child, lineage)}


def test_parent_saves_are_recorded_with_hashes(runs: Runs) -> None:
    saves = of_type(runs.parent, "save")  # type: ignore[attr-defined]
    assert [Path(s["path"]).name for s in saves] == ["w.weights.h5", "m.keras", "mod.keras"]
    for s in saves:
        assert len(s["sha256"]) == 64 and s["bytes"] > 0
        assert s["optimizer_included"] is True and s["iterations"] == 48 and s["file_iterations"] == 48
    assert [s["format"] for s in saves] == ["weights.h5", "keras", "keras"]
    assert saves[0]["api"] == "Model.save_weights" and saves[1]["api"] == "Model.save"


def test_load_weights_with_a_new_adam_loses_the_optimizer_state(runs: Runs) -> None:
    records = runs.run(
        PRELUDE
        + """
model = build()
model.load_weights("w.weights.h5")
model.fit(scaled, y, epochs=2, batch_size=32, verbose=0)
"""
    )
    (restore,) = of_type(records, "restore")
    assert restore["api"] == "Model.load_weights" and restore["parent"]["run_id"] == parent_id(runs)
    assert restore["optimizer"]["iterations"] == 0 and restore["optimizer"]["built"] is False
    assert any("Skipping variable loading for optimizer" in w for w in restore["warnings"])
    found = online_findings(records)
    f = found["optimizer_state_not_restored"]
    assert f["evidence"]["parent_run"] == parent_id(runs) and f["evidence"]["steps_at_save"] == 48
    assert "optimizer_state_not_restored" in offline_kinds(runs.root, records[0]["run_id"])


def test_raw_inputs_after_a_standardized_parent(runs: Runs) -> None:
    records = runs.run(
        PRELUDE
        + """
model = keras.models.load_model("m.keras")
model.fit(raw, y, epochs=2, batch_size=32, verbose=0)
"""
    )
    (restore,) = of_type(records, "restore")
    assert restore["api"] == "keras.saving.load_model" and restore["optimizer"]["iterations"] == 48
    assert restore["written_with"]["keras"] == keras_version(runs)
    found = online_findings(records)
    assert {"input_distribution_shift", "loss_jump_after_restore"} <= set(found)
    assert found["input_distribution_shift"]["severity"] == "critical"
    assert "optimizer_state_not_restored" not in found
    assert {"input_distribution_shift", "loss_jump_after_restore"} <= offline_kinds(
        runs.root, records[0]["run_id"]
    )


def test_other_learning_rate_and_batch_size(runs: Runs) -> None:
    records = runs.run(
        PRELUDE
        + """
model = keras.saving.load_model("m.keras")
model.optimizer.learning_rate.assign(0.001)
model.fit(scaled, y, epochs=2, batch_size=64, verbose=0)
"""
    )
    found = online_findings(records)
    changes = {c["what"]: c for c in found["hyperparameter_changed_after_restore"]["evidence"]["changes"]}
    assert set(changes) == {"learning_rate", "batch_size"}
    assert changes["batch_size"]["parent"] == 32 and changes["batch_size"]["child"] == 64
    assert changes["learning_rate"]["child"] == pytest.approx(0.001)


def test_checkpoint_changed_on_disk_between_save_and_restore(runs: Runs) -> None:
    path = runs.root / "mod.keras"
    with zipfile.ZipFile(path, "a") as zf:  # still a loadable model, but not the saved bytes
        zf.writestr("notes.txt", "edited after saving")
    records = runs.run(
        PRELUDE
        + """
model = keras.models.load_model("mod.keras")
model.fit(scaled, y, epochs=1, batch_size=32, verbose=0)
"""
    )
    found = online_findings(records)
    f = found["checkpoint_modified"]
    assert f["evidence"]["saved_by_run"] == parent_id(runs)
    assert f["evidence"]["saved_sha256"] != f["evidence"]["restored_sha256"]
    assert "checkpoint_modified" in offline_kinds(runs.root, records[0]["run_id"])


def test_keras_file_from_another_keras_version(runs: Runs) -> None:
    src, dst = runs.root / "m.keras", runs.root / "old.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "metadata.json":
                meta = json.loads(data)
                meta["keras_version"] = "3.0.5"
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    records = runs.run(
        PRELUDE
        + """
model = keras.models.load_model("old.keras")
model.fit(scaled, y, epochs=1, batch_size=32, verbose=0)
"""
    )
    (restore,) = of_type(records, "restore")
    assert restore["written_with"]["keras"] == "3.0.5"
    f = online_findings(records)["version_mismatch"]
    assert f["evidence"]["differences"][0]["written_with"] == "3.0.5"


def test_clean_resume_raises_no_restore_finding(runs: Runs) -> None:
    shutil.copy(runs.root / "m.keras", runs.root / "copy.keras")  # a copy is still the parent's save
    records = runs.run(
        PRELUDE
        + """
model = keras.models.load_model("copy.keras")
model.fit(scaled, y, epochs=3, batch_size=32, verbose=0)
"""
    )
    (restore,) = of_type(records, "restore")
    assert restore["parent"]["run_id"] == parent_id(runs) and restore["parent"]["match"] == "sha256"
    assert online_findings(records) == {}
    assert offline_kinds(runs.root, records[0]["run_id"]) == set()
    epochs = of_type(records, "epoch")
    assert epochs[0]["iterations"] - epochs[0]["steps"] == 48  # the optimizer went on from step 48


def keras_version(runs: Runs) -> str:
    return str(runs.parent[0]["env"]["packages"]["keras"])  # type: ignore[attr-defined]
