"""disk_growth: per watched directory, with "full in about N epochs" from free space."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from bench import synthetic as syn
from tests.support import analyze_records

MIB = syn.MIB


_analyze = partial(analyze_records, kind="disk_growth")


def test_growing_checkpoint_dir_projects_from_free_space_measured_here(tmp_path: Path) -> None:
    path = str(tmp_path)
    found = _analyze(
        syn.trace(30, lambda i: {"dirs": {path: {"bytes": 20 * MIB * i, "files": i, "role": "checkpoint"}}})
    )
    assert [f.target for f in found] == [path]
    ev = found[0].evidence
    assert ev["free_source"] == "measured on this host at analysis time"
    assert ev["free_bytes"] > 0
    assert abs(ev["epochs_to_limit"] - ev["free_bytes"] / ev["slope_per_epoch"]) < 1
    assert "max_to_keep" in found[0].hint
    assert "full in about" in found[0].title


def test_free_space_from_the_trace_when_the_path_is_not_here() -> None:
    path = "/nonexistent/epochwatch-test/ckpt"

    def make(i: int) -> dict[str, Any]:
        return {
            "dirs": {
                path: {"bytes": 100 * MIB * i, "files": i, "role": "tensorboard", "free_bytes": 2000 * MIB}
            }
        }

    f = _analyze(syn.trace(30, make))[0]
    assert f.evidence["free_source"] == "recorded in the trace"
    assert f.severity == "critical"  # 2000 MiB free at 100 MiB/epoch: full within 50 epochs
    assert "TensorBoard" in f.hint


def test_rotation_with_a_flat_floor_is_quiet() -> None:
    path = "/nonexistent/rot"
    found = _analyze(
        syn.trace(80, lambda i: {"dirs": {path: {"bytes": 100 * MIB * (3 + i % 4), "files": 3 + i % 4}}})
    )
    assert found == []


def test_sawtooth_with_a_rising_floor_is_growth() -> None:
    path = "/nonexistent/saw"

    def make(i: int) -> dict[str, Any]:
        cycle, pos = divmod(i, 5)
        return {"dirs": {path: {"bytes": 100 * MIB * (3 + pos) + 60 * MIB * cycle, "files": 3 + pos + cycle}}}

    assert [f.target for f in _analyze(syn.trace(60, make))] == [path]


def test_many_small_files_is_info() -> None:
    path = "/nonexistent/tmp"
    found = _analyze(
        syn.trace(40, lambda i: {"dirs": {path: {"bytes": 100 * i, "files": 2 * i, "role": "temp"}}})
    )
    assert [f.severity for f in found] == ["info"]
    assert found[0].evidence["series"] == "files"


def test_the_fix_does_not_repeat_what_the_checkpoint_callback_already_keeps(tmp_path: Path) -> None:
    """tensorflow#38668: ModelCheckpoint(save_best_only=True) with `{epoch}-{batch}` in its
    filepath: every improvement a new file. The fix said "use save_best_only=True"."""
    path = str(tmp_path)
    records = syn.trace(
        30, lambda i: {"dirs": {path: {"bytes": 20 * MIB * i, "files": i, "role": "checkpoint"}}}
    )
    saves = [
        {"type": "save", "run_id": records[0]["run_id"], "t": syn.T0 + 1 + i, "path": f"{path}/m-{i}.keras",
         "via": "ModelCheckpoint", "keeps": {"save_best_only": True}}
        for i in range(3)
    ]  # fmt: skip
    (f,) = _analyze([records[0], *saves, *records[1:]])
    assert "already saves only improvements" in f.hint and "save_best_only=True)," in f.hint, f.hint
    managed = [{**s, "via": "CheckpointManager", "keeps": {"max_to_keep": 3}} for s in saves]
    (g,) = _analyze([records[0], *managed, *records[1:]])
    assert g.hint.startswith("the CheckpointManager keeps 3 checkpoints already"), g.hint


def test_a_directory_of_savedmodel_exports_is_told_about_exports(tmp_path: Path) -> None:
    """tensorflow#23025: `model.export(f"export/{epoch}")` every epoch; the fix offered
    ModelCheckpoint / CheckpointManager, which do not make exports."""
    path = str(tmp_path)
    records = syn.trace(
        30, lambda i: {"dirs": {path: {"bytes": 3 * MIB * i, "files": 4 * i, "role": "checkpoint"}}}
    )
    saves = [
        {"type": "save", "run_id": records[0]["run_id"], "t": syn.T0 + 1 + i, "path": f"{path}/{i:03d}",
         "format": "saved_model", "api": "tf.saved_model.save", "save_seconds": 0.1}
        for i in range(3)
    ]  # fmt: skip
    (f,) = _analyze([records[0], *saves, *records[1:]])
    assert "SavedModel export" in f.hint and "one directory" in f.hint, f.hint
    assert "ModelCheckpoint" not in f.hint and "CheckpointManager" not in f.hint, f.hint


def test_a_checkpoint_manager_full_to_its_max_to_keep_is_no_growth(tmp_path: Path) -> None:
    """tensorflow/models' step loop, CheckpointManager(max_to_keep=3): the directory grew over
    the first three saves and held (here 10 of 10) ("grows 16.1 MiB per epoch ... it stopped growing", fix
    "keep at most K checkpoints"), judged on intervals. A directory bigger than its K
    checkpoints is still said, with a fix that knows the manager keeps K already."""
    path = str(tmp_path)

    def run(held: int) -> list[Any]:
        records = syn.trace(
            12, lambda i: {"dirs": {path: {"bytes": 16 * MIB * min(i + 1, held) + 100, "files": 2 * min(i + 1, held) + 1,
                                           "role": "checkpoint"}}}
        )  # fmt: skip
        made = [
            {"type": "save", "run_id": records[0]["run_id"], "t": syn.T0 + 1.5 + i, "path": f"{path}/ckpt-{i + 1}",
             "format": "tf_checkpoint", "api": "tf.train.CheckpointManager.save", "via": "CheckpointManager",
             "keeps": {"max_to_keep": 10}, "bytes": 16 * MIB}
            for i in range(12)
        ]  # fmt: skip
        out = [records[0]]
        for rec, save in zip(records[1:], made, strict=False):
            out += [save, rec]
        return _analyze(out + records[len(made) + 1 :])

    assert run(10) == []  # ten checkpoints of 16 MiB, as many as it keeps
    (f,) = run(12)
    assert "keeps 10 checkpoints already" in f.hint, f.hint


def test_a_debugger_dump_left_on_is_told_to_turn_it_off(tmp_path: Path) -> None:
    """The Debugger V2 guide's `enable_dump_debug_info(logdir, "FULL_HEALTH",
    circular_buffer_size=-1)` left in: +3.8 MiB a dump an epoch, told to lower
    histogram_freq (a TensorBoard log directory's fix)."""
    path = str(tmp_path)
    records = syn.trace(
        20, lambda i: {"dirs": {path: {"bytes": 4 * MIB * i, "files": 3 + i // 4, "role": "tensorboard"}}}
    )
    dump = {"dump_root": path, "tensor_debug_mode": "FULL_HEALTH", "circular_buffer_size": -1}
    fit = {
        "type": "fit_start",
        "run_id": records[0]["run_id"],
        "t": syn.T0 + 0.5,
        "fit": 0,
        "debug_dump": dump,
    }
    (f,) = _analyze([records[0], fit, *records[1:]])
    assert "TensorFlow Debugger V2" in f.hint and "disable_dump_debug_info" in f.hint, f.hint
    assert (
        "tensor_debug_mode=FULL_HEALTH, circular_buffer_size=-1" in f.hint and "histogram_freq" not in f.hint
    )
