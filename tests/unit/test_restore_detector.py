"""The restore detector on recorded-shape runs: each finding kind, and a clean resume raising none."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from epochwatch.analysis import restore as det
from epochwatch.analysis.detectors import all_detectors
from epochwatch.analysis.engine import analyze
from epochwatch.analysis.restore.lineage import build_lineage
from epochwatch.analysis.run import Run
from epochwatch.trace.writer import TraceWriter
from tests.unit import restore_records as rr


def findings(parent: Run | None, child: Run) -> dict[str, dict[str, Any]]:
    runs = [child] if parent is None else [parent, child]
    found = [asdict(f) for f in det.detect(child, build_lineage(runs))]
    kinds = [f["kind"] for f in found]
    assert len(kinds) == len(set(kinds)), kinds
    return {f["kind"]: f for f in found}


def pair(**child: Any) -> tuple[Run, Run]:
    return rr.make_run(rr.parent_records()), rr.make_run(rr.child_records(**child))


def test_clean_resume_raises_nothing() -> None:
    assert findings(*pair()) == {}


def test_unrelated_restore_raises_nothing_that_needs_a_parent() -> None:
    child = rr.make_run(rr.child_records(restore_over={"sha256": rr.OTHER_SHA, "path": "/elsewhere.keras"}))
    assert findings(rr.make_run(rr.parent_records()), child) == {}


def test_fresh_optimizer_after_load_weights() -> None:
    warn = "UserWarning: Skipping variable loading for optimizer 'adam', because it has 2 variables"
    parent, child = pair(
        restore_over={
            "format": "weights.h5",
            "api": "Model.load_weights",
            "optimizer": {"class": "Adam", "iterations": 0, "built": False, "variables": 2},
            "iterations": 0,
            "warnings": [warn],
        },
        start_step=0,
        losses=(1.2, 1.0, 0.9),  # the fresh optimizer's large first steps: the loss jumps from 0.6
    )
    f = findings(parent, child)["optimizer_state_not_restored"]
    assert f["severity"] == "warning" and f["target"] == rr.PATH and f["epoch"] == 5
    assert "the loss jumped 0.6 -> 1.2" in f["title"]
    ev = f["evidence"]
    assert ev["steps_at_save"] == 500 and ev["steps_after_restore"] == 0
    assert ev["parent_run"] == "parent" and ev["warnings"] == [warn]
    assert "optimizer.build" in f["hint"]
    # Severity by consequence: the same fresh optimizer with the loss going on down (0.6 ->
    # 0.55) cost nothing visible: info, said with the losses.
    parent, child = pair(restore_over={"optimizer": {"class": "Adam", "iterations": 0}}, start_step=0)
    f = findings(parent, child)["optimizer_state_not_restored"]
    assert f["severity"] == "info" and "no loss jump followed (0.6 -> 0.55)" in f["title"], f


def test_a_rate_lost_with_the_optimizers_state_is_said_once_with_the_rate_at_the_save() -> None:
    """raster-vision#4's shape: ReduceLROnPlateau took Adam to 6.4e-07; the resume built and
    compiled Adam(1e-2) and loaded the weights only. The rate is optimizer state (building
    the optimizer before load_weights restores it too): optimizer_state_not_restored says
    it, and no second warning repeats the cause with the parent's fit_start rate in its fix."""
    parent, child = pair(
        restore_over={"optimizer": {"class": "Adam", "iterations": 0}, "iterations": 0},
        start_step=0,
        fit_over={"lr": 0.01},
        losses=(1.2, 1.0, 0.9),
    )
    parent.epochs[-1]["lr"] = 6.4e-07  # the plateau callback's rate at the save
    found = findings(parent, child)
    assert "hyperparameter_changed_after_restore" not in found, found.keys()
    f = found["optimizer_state_not_restored"]
    assert "the learning rate with it: 6.4e-07 at the save, 0.01 after" in f["title"], f["title"]
    # With the optimizer's state restored, the rate change is a setting of its own, and its
    # fix names the rate at the save, not the parent's first.
    parent, child = pair(fit_over={"lr": 0.01}, losses=(1.2, 1.0, 0.9))
    parent.epochs[-1]["lr"] = 6.4e-07
    f = findings(parent, child)["hyperparameter_changed_after_restore"]
    assert "learning_rate 6.4e-07" in f["hint"] and "fit_start record" not in f["hint"], f["hint"]


def test_an_optimizer_loaded_then_compiled_anew_is_said_so() -> None:
    # keras#2378's shape: load_weights restored the optimizer (step 500), then compile() with a
    # new RMSprop at another rate made a fresh one. Not "load_weights skipped it".
    parent, child = pair(
        restore_over={
            "format": "weights.h5",
            "api": "Model.load_weights",
            "optimizer": {"class": "Adam", "iterations": 500},
        },
        fit_over={"optimizer": "RMSprop", "lr": 0.0005},
        start_step=0,
    )
    f = findings(parent, child)["optimizer_state_not_restored"]
    assert "then compile() made a new one" in f["title"] and f["evidence"]["replaced_after_restore"] is True
    assert "optimizer.build" not in f["hint"] and "model.optimizer.learning_rate" in f["hint"], f["hint"]
    assert "RMSprop, learning_rate 0.0005" in f["hint"]
    assert f["severity"] == "info"  # no loss jump followed


def test_a_new_optimizer_for_unfrozen_layers_is_no_lost_state() -> None:
    """ludwig#3733's fine-tuning: load the best stage-1 model (Adam at step 500), unfreeze the
    base, compile a new RMSprop at a tenth of the rate: that compile is needed (the trainable
    weights changed), so no finding unless the loss jumped, and then no advice to skip it."""
    parent = rr.make_run(rr.parent_records(trainable=65))
    restored = {"optimizer": {"class": "Adam", "iterations": 500}}
    tuned = {"optimizer": "RMSprop", "lr": 1e-5, "trainable": 55489}
    child = rr.make_run(rr.child_records(restore_over=restored, fit_over=tuned, start_step=0))
    assert "optimizer_state_not_restored" not in findings(parent, child)
    jumped = rr.make_run(
        rr.child_records(restore_over=restored, fit_over=tuned, start_step=0, losses=(1.2, 1.0, 0.9))
    )
    f = findings(parent, jumped)["optimizer_state_not_restored"]
    assert f["severity"] == "warning" and f["evidence"]["trainable_params_changed"] == [65, 55489]
    assert "skip that compile" not in f["hint"] and "65 -> 55,489" in f["hint"], f["hint"]
    # The same trainable weights: a resume that lost its optimizer, said as before (info).
    same = rr.make_run(
        rr.child_records(restore_over=restored, fit_over={**tuned, "trainable": 65}, start_step=0)
    )
    assert findings(parent, same)["optimizer_state_not_restored"]["severity"] == "info"


def test_a_restore_into_another_model_is_a_new_training_not_a_failed_resume() -> None:
    """tensorflow#44842's transfer learning: the pretrained net loaded into one with a 5-class
    head (`load_weights(..., skip_mismatch=True)`), a new Adam at a tenth of the rate, a new
    task whose first loss is its own (1.14 against the parent's last 0.22): critical
    loss_jump_after_restore and two warnings, all three by design. What the parent trained
    and what the child trains are other tasks: only the file's checks apply."""
    parent = rr.make_run(rr.parent_records())
    parent.fits[0]["model"] = {"class": "Sequential", "params": 535818, "trainable_params": 535818}
    fine_tune = {"lr": 1e-4, "trainable": 534533, "params": 534533}
    child = rr.make_run(rr.child_records(fit_over=fine_tune, start_step=0, losses=(1.14, 0.66, 0.5)))
    assert not set(findings(parent, child)) & {
        "loss_jump_after_restore",
        "optimizer_state_not_restored",
        "hyperparameter_changed_after_restore",
    }, findings(parent, child)
    # The same sizes, and Keras said it skipped a layer's weights: the same verdict.
    skipped = {"warnings": ["UserWarning: A total of 1 objects could not be loaded. Example error ..."]}
    same_size = rr.make_run(
        rr.child_records(restore_over=skipped, fit_over={"lr": 1e-4}, start_step=0, losses=(1.14, 0.66, 0.5))
    )
    assert "loss_jump_after_restore" not in findings(parent, same_size)
    # Without either, the jump is a resume's and said.
    resumed = rr.make_run(rr.child_records(fit_over={"lr": 1e-4}, start_step=0, losses=(1.14, 0.66, 0.5)))
    assert "loss_jump_after_restore" in findings(parent, resumed)


def _custom_loop(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same records as a custom loop's with tf.train.Checkpoint(model=model): automatic
    epochs (their steps the optimizer's updates), no step counter, no loss; checkpoints of
    the model alone."""
    out = []
    for rec in records:
        rec = dict(rec)
        if rec["type"] == "epoch":
            rec["source"] = "auto"
            for key in ("iterations", "metrics", "lr"):
                rec.pop(key, None)
        if rec["type"] in ("save", "restore"):
            for key in ("iterations", "file_iterations", "optimizer"):
                rec.pop(key, None)
            rec.update(format="tf_checkpoint", optimizer_included=False, file_optimizer_variables=0)
        out.append(rec)
    return out


def test_a_checkpoint_of_the_model_alone_restarts_the_optimizer() -> None:
    """tensorflow#44867's shape: `tf.train.Checkpoint(model=model)` in a custom loop, resumed
    in a second process: Adam starts at 0 (the first loss +64%). Neither side counts steps,
    but the parent's 500 updates are in its trace and the file holds no optimizer state."""
    parent = rr.make_run(_custom_loop(rr.parent_records()))
    child = rr.make_run(_custom_loop(rr.child_records(start_step=0)))
    f = findings(parent, child)["optimizer_state_not_restored"]
    assert f["evidence"]["steps_at_save"] == 500 and f["evidence"]["steps_after_restore"] == 0
    assert f["evidence"]["measured_from"] == "the file holds no optimizer state"
    assert f["severity"] == "warning"  # no loss in the trace: the consequence cannot be told
    assert "tf.train.Checkpoint(model=model, optimizer=" in f["hint"]
    # Without a parent trace there is no count of what was lost: nothing is said.
    assert "optimizer_state_not_restored" not in findings(None, child)


def test_fresh_optimizer_is_found_from_the_file_alone() -> None:
    """No parent trace at all: the file's own step counter is the evidence."""
    child = rr.make_run(
        rr.child_records(
            restore_over={"sha256": rr.OTHER_SHA, "optimizer": {"class": "Adam", "iterations": 0}},
            start_step=0,
        )
    )
    f = findings(None, child)["optimizer_state_not_restored"]
    assert f["evidence"]["steps_at_save"] == 500 and "parent_run" not in f["evidence"]


def test_file_without_optimizer_state_gets_the_save_hint() -> None:
    parent, child = pair(
        restore_over={"optimizer_included": False, "file_iterations": None, "optimizer": {"iterations": 0}},
        start_step=0,
    )
    f = findings(parent, child)["optimizer_state_not_restored"]
    assert "no optimizer state" in f["hint"]


def test_restored_optimizer_later_is_not_a_finding() -> None:
    """A TF checkpoint restores slots lazily: the first epoch shows the counter continued."""
    parent, child = pair(restore_over={"format": "tf_checkpoint", "optimizer": {"iterations": 0}})
    assert "optimizer_state_not_restored" not in findings(parent, child)


def test_loss_jump_against_the_parents_variation() -> None:
    parent, child = pair(losses=(2.5, 1.0, 0.7))
    f = findings(parent, child)["loss_jump_after_restore"]
    assert f["severity"] == "critical"  # more than doubled
    ev = f["evidence"]
    assert ev["parent_last_loss"] == pytest.approx(0.6)
    assert ev["first_loss_after_restore"] == 2.5 and ev["jump_in_typical_changes"] > 10


def test_small_rise_within_noise_is_not_a_jump() -> None:
    parent, child = pair(losses=(0.64, 0.6, 0.55))
    assert "loss_jump_after_restore" not in findings(parent, child)


def test_learning_rate_and_batch_size_changes() -> None:
    parent, child = pair(fit_over={"lr": 0.001, "batch_size": 128})
    f = findings(parent, child)["hyperparameter_changed_after_restore"]
    changes = {c["what"]: (c["parent"], c["child"]) for c in f["evidence"]["changes"]}
    assert changes == {"learning_rate": (0.01, 0.001), "batch_size": (32, 128)}
    # Severity by consequence: the loss went on down (0.6 -> 0.55): info, said with the values.
    assert f["severity"] == "info" and "learning_rate 0.01 -> 0.001, batch_size 32 -> 128" in f["title"]
    assert "no loss jump followed (0.6 -> 0.55)" in f["title"] and "saved step" not in f["hint"]
    parent, child = pair(fit_over={"lr": 0.001, "batch_size": 128}, losses=(1.2, 1.0, 0.9))
    f = findings(parent, child)["hyperparameter_changed_after_restore"]
    assert f["severity"] == "warning" and "the loss jumped 0.6 -> 1.2" in f["title"]


def test_a_scheduler_counting_from_epoch_0_again_is_a_rate_change_with_its_fix() -> None:
    """keras#1872: resumed without initial_epoch, the LearningRateScheduler set the rate of
    epoch 0 (0.0025 at the save -> 0.01): fit_start holds the restored rate, the epochs the
    scheduler's, and nothing was said."""

    def resumed(initial_epoch: int, **child: Any) -> tuple[Run, Run]:
        records = rr.child_records(**child)
        for rec in records:
            if rec["type"] == "fit_start":
                rec.update(
                    callbacks=["LearningRateScheduler", "ModelCheckpoint"], initial_epoch=initial_epoch
                )
        return rr.make_run(rr.parent_records()), rr.make_run(records)

    f = findings(*resumed(0, epoch_lrs=(0.04, 0.04, 0.02)))["hyperparameter_changed_after_restore"]
    assert f["evidence"]["changes"] == [{"what": "learning_rate", "parent": 0.01, "child": 0.04}]
    assert "pass initial_epoch=5 to fit()" in f["hint"] and f["evidence"]["parent_epochs"] == 5
    # Resumed with its initial_epoch: the schedule goes on, the same rate, nothing to say.
    assert "hyperparameter_changed_after_restore" not in findings(*resumed(5))


def test_optimizer_loss_and_schedule_changes() -> None:
    schedule = {"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.01}}
    parent, child = pair(fit_over={"optimizer": "SGD", "loss": "mae", "lr": schedule})
    changes = {
        c["what"]
        for c in findings(parent, child)["hyperparameter_changed_after_restore"]["evidence"]["changes"]
    }
    assert changes == {"optimizer", "loss", "learning_rate_schedule"}


def test_optimizer_config_change() -> None:
    parent, child = pair(fit_over={"beta_1": 0.5})
    (change,) = findings(parent, child)["hyperparameter_changed_after_restore"]["evidence"]["changes"]
    assert change == {"what": "optimizer.beta_1", "parent": 0.9, "child": 0.5}


def test_raw_inputs_instead_of_standardized() -> None:
    parent, child = pair(fit_over={"input_stats": rr.stats(mean=50.0, std=10.0)})
    f = findings(parent, child)["input_distribution_shift"]
    assert f["severity"] == "critical"
    assert f["evidence"]["shifted_inputs"] == 3 and f["evidence"]["shifted"][0]["z"] == pytest.approx(50.0)
    assert "Normalization" in f["hint"]


def _served(mean: float, std: float, model_serial: int | None = None) -> Run:
    """A child that restored the parent's save and only served: two windows of predict
    calls, the first carrying the statistics of the first inputs served."""
    over = {"model_serial": model_serial} if model_serial is not None else {}
    recs = [rr.run_start("child", 2000.0), rr.restore("child", 2000.5, **over)]
    for n in range(2):
        window = rr.epoch("child", n, 2001.0 + 10 * n)
        for k in ("loss", "iterations", "lr", "batch_size", "steps"):
            window.pop(k, None)
        window.pop("metrics", None)
        window.update(source="auto", epoch_source="inference_calls", inference={"calls": 50})
        if n == 0:
            window["inference"]["input_stats"] = rr.stats(mean=mean, std=std)
        recs.append(window)
    return rr.make_run(recs)


def test_a_restored_model_served_raw_inputs_is_a_shift_without_a_fit() -> None:
    # keras#13864: trained on standardized inputs, loaded and fed raw ones: MSE 37,000
    # against 0.004, and nothing was said, for the inputs were compared only at a fit.
    parent = rr.make_run(rr.parent_records())
    parent.fits[0]["input_stats"] = rr.stats()
    for serial in (None, 7):  # 7: the restore names the model it loaded, which no fit trains
        f = findings(parent, _served(mean=50.0, std=10.0, model_serial=serial))["input_distribution_shift"]
        assert f["severity"] == "critical" and f["evidence"]["shifted_inputs"] == 3, f
        assert "input_distribution_shift" not in findings(
            parent, _served(mean=0.1, std=1.0, model_serial=serial)
        )


def test_slightly_different_sample_is_not_a_shift() -> None:
    parent, child = pair(fit_over={"input_stats": rr.stats(mean=0.2, std=1.1)})
    assert "input_distribution_shift" not in findings(parent, child)


def test_changed_input_structure_is_a_shift() -> None:
    parent, child = pair(fit_over={"input_stats": rr.stats(features=5)})
    f = findings(parent, child)["input_distribution_shift"]
    assert f["evidence"]["shifted"][0]["change"] == "structure"


def test_keras_version_in_the_file() -> None:
    child = rr.make_run(rr.child_records(restore_over={"written_with": {"keras": "3.3.3"}}))
    f = findings(None, child)["version_mismatch"]
    assert f["severity"] == "warning"
    (diff,) = f["evidence"]["differences"]
    assert diff == {"package": "keras", "source": "file", "written_with": "3.3.3", "loaded_with": "3.15.1"}


def test_tensorflow_version_of_the_parent() -> None:
    parent, child = pair(env_over={"packages": {"tensorflow": "2.20.0", "keras": "3.15.1"}})
    f = findings(parent, child)["version_mismatch"]
    assert f["evidence"]["differences"][0]["source"] == "parent run"


def test_environment_changed() -> None:
    parent, child = pair(env_over={"gpus": [{"name": "NVIDIA A100"}], "cpu_count": 4, "driver": "535.1"})
    f = findings(parent, child)["environment_changed"]
    assert f["severity"] == "warning"
    assert {c["what"] for c in f["evidence"]["changes"]} == {"gpus", "driver", "cpu_count"}


def test_checkpoint_modified_same_path_other_bytes() -> None:
    parent, child = pair(restore_over={"sha256": rr.OTHER_SHA})
    found = findings(parent, child)
    f = found["checkpoint_modified"]
    assert f["evidence"]["saved_sha256"] == rr.SHA and f["evidence"]["restored_sha256"] == rr.OTHER_SHA
    assert "same size" in f["title"]
    # a path match is not a parent: nothing that compares with the parent is judged
    assert set(found) == {"checkpoint_modified"}


def test_slow_restore() -> None:
    child = rr.make_run(rr.child_records(restore_over={"load_seconds": 60.0, "bytes": 2_000_000_000}))
    f = findings(None, child)["slow_restore"]
    assert f["evidence"]["expected_seconds"] == pytest.approx(11.0)
    assert f["severity"] == "info"
    fast = rr.make_run(rr.child_records(restore_over={"load_seconds": 9.0, "bytes": 2_000_000_000}))
    assert findings(None, fast) == {}


def test_restore_slowdown_after_warmup() -> None:
    parent, child = pair(losses=(0.55, 0.5, 0.45, 0.4), seconds=(30.0, 25.0, 26.0, 25.0))
    f = findings(parent, child)["restore_slowdown"]
    assert f["evidence"]["ratio"] == pytest.approx(2.5)
    assert f["evidence"]["child_epochs"] == [6, 7, 8]


def test_warmup_epoch_alone_is_not_a_slowdown() -> None:
    parent, child = pair(seconds=(40.0, 10.0, 10.0))
    assert "restore_slowdown" not in findings(parent, child)


def test_parent_found_through_the_restore_record(tmp_path: Path) -> None:
    """Online traces carry `parent.trace`; the detector follows it without a lineage."""
    trace = tmp_path / "parent.jsonl"
    with TraceWriter(trace) as w:
        for rec in rr.parent_records():
            w.write(rec)
    link = {"run_id": "parent", "trace": str(trace), "match": "sha256", "save_sha256": rr.SHA}
    child = rr.make_run(rr.child_records(restore_over={"parent": link}, fit_over={"batch_size": 64}))
    found = {f.kind for f in det.detect(child)}
    assert found == {"hyperparameter_changed_after_restore"}


def test_registered_in_the_engine(tmp_path: Path) -> None:
    """The report's path: build_lineage links the runs, the engine's analyze finds the rest."""
    assert "restore" in {d.name for d in all_detectors()}
    parent = rr.make_run(rr.parent_records(), path=tmp_path / "parent.jsonl")  # never read: known
    child = rr.make_run(rr.child_records(fit_over={"batch_size": 64}))
    build_lineage([parent, child])
    assert child.restores[0]["parent"]["trace"] == str(tmp_path / "parent.jsonl")
    kinds = [f.kind for f in analyze(child, parents=det.ParentCache([parent]))]
    assert kinds == ["hyperparameter_changed_after_restore"]


def _best_save(run_id: str, t: float, value: float, sha: str, lower: bool = True) -> dict[str, Any]:
    best = {"monitor": "val_loss", "value": value, "lower_is_better": lower}
    return rr.save(run_id, t, path="/ckpt/best.weights.h5", sha=sha, via="ModelCheckpoint", best=best)


def test_a_resumed_model_checkpoint_that_replaced_a_better_best_is_said() -> None:
    """keras#17012: BackupAndRestore brings the model and the epoch back, not the
    ModelCheckpoint's best value: the resumed run's first epoch "improved" on nothing and its
    save put val_loss 0.214 over the 0.094 its parent kept in best.weights.h5. With
    initial_value_threshold it saves only what beats 0.094, and nothing is said; a better
    first save is no finding either, nor are values compared across monitors' directions."""
    parent_recs = rr.parent_records()
    parent_recs.insert(-1, _best_save("parent", 1040.0, 0.094, "c" * 64))
    parent = rr.make_run(parent_recs)

    def child_with(value: float, lower: bool = True) -> Run:
        recs = rr.child_records()
        recs.append(_best_save("child", 2014.5, value, "d" * 64, lower))
        return rr.make_run(recs)

    f = findings(parent, child_with(0.214))["best_checkpoint_replaced"]
    assert f["severity"] == "warning" and f["target"] == "/ckpt/best.weights.h5", f
    assert "val_loss 0.214 where run parent had kept 0.094" in f["title"], f["title"]
    assert "initial_value_threshold=0.094" in f["hint"]
    assert "best_checkpoint_replaced" not in findings(parent, child_with(0.05))
    assert "best_checkpoint_replaced" not in findings(parent, child_with(0.214, lower=False))
    assert "best_checkpoint_replaced" not in findings(parent, rr.make_run(rr.child_records()))
