"""The in-process resume watcher: parent found at restore time, findings written during the run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from epochwatch.checkpoints import files as cfiles
from epochwatch.checkpoints.events import SaveEvents
from epochwatch.checkpoints.hashing import hash_files
from epochwatch.checkpoints.resume import ResumeWatcher
from epochwatch.fingerprint import collect as collect_fingerprint
from epochwatch.recorder import Recorder
from epochwatch.trace.reader import iter_records
from epochwatch.trace.writer import TraceWriter
from tests.unit import restore_records as rr


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    rec = Recorder(
        {"EPOCHWATCH_DIR": str(tmp_path / "traces"), "EPOCHWATCH_SOCKET": str(tmp_path / "none.sock")}
    )
    yield rec
    rec.finish("completed")


def write_parent(tmp_path: Path, ckpt: Path, sha: str, env: dict[str, Any] | None = None) -> None:
    """The trace of run "parent", whose saves wrote `ckpt` with content `sha`."""
    parent = rr.parent_records("parent")
    if env is not None:
        parent[0]["env"] = env
    for rec in parent:
        if rec["type"] == "save":
            rec.update(path=str(ckpt), sha256=sha)
    with TraceWriter(tmp_path / "traces" / "parent.jsonl") as w:
        for rec in parent:
            w.write(rec)


def own_records(recorder: Recorder) -> list[dict[str, Any]]:
    return list(iter_records(Path(recorder.trace_dir) / f"{recorder.run_id}.jsonl"))


def test_findings_appear_during_the_resumed_run(tmp_path: Path, recorder: Recorder) -> None:
    ckpt = tmp_path / "model.keras"
    ckpt.write_bytes(b"checkpoint bytes")
    sha = hash_files(cfiles.snapshot([str(ckpt)]), None)
    write_parent(tmp_path, ckpt, sha, env=collect_fingerprint())  # the same machine as this (child) run

    watcher = ResumeWatcher(recorder)
    assert not watcher.listening and watcher.attach() and watcher.listening
    events = SaveEvents(recorder.emit, on_restore=watcher.on_restore)
    events.restored(
        str(ckpt),
        cfiles.KERAS,
        "keras.saving.load_model",
        0.1,
        [],
        optimizer={"class": "Adam", "iterations": 0, "built": False},
        iterations=0,
    )
    events.close(5)
    recorder.emit(
        "fit_start", **{k: v for k, v in rr.fit_start("x", 0).items() if k not in ("type", "run_id", "t")}
    )
    for n, loss in enumerate((3.0, 1.0)):
        recorder.begin_epoch(5 + n, "loop")
        recorder.end_epoch({"metrics": {"loss": loss}, "iterations": 100 * (n + 1), "steps": 100})

    records = own_records(recorder)
    (restore,) = [r for r in records if r["type"] == "restore"]
    assert restore["parent"]["run_id"] == "parent" and restore["parent"]["match"] == "sha256"
    kinds = [(r["kind"], i) for i, r in enumerate(records) if r["type"] == "finding"]
    order = [r["type"] for r in records]
    assert [k for k, _ in kinds] == ["optimizer_state_not_restored", "loss_jump_after_restore"]
    # Both after the first epoch: the optimizer's severity is by its consequence, the loss
    # after the restore (here it jumped: a warning), which that epoch tells.
    assert order[kinds[0][1] - 1] == "epoch" and order[kinds[1][1] - 2] == "epoch"
    (optimizer,) = [
        r for r in records if r["type"] == "finding" and r["kind"] == "optimizer_state_not_restored"
    ]
    assert optimizer["severity"] == "warning" and "the loss jumped" in optimizer["title"]


def test_no_parent_no_link_and_no_parent_findings(tmp_path: Path, recorder: Recorder) -> None:
    ckpt = tmp_path / "lonely.keras"
    ckpt.write_bytes(b"never saved by a traced run")
    watcher = ResumeWatcher(recorder)
    watcher.attach()
    events = SaveEvents(recorder.emit, on_restore=watcher.on_restore)
    events.restored(str(ckpt), cfiles.KERAS, "keras.saving.load_model", 0.1, [])
    events.close(5)
    recorder.begin_epoch(0, "loop")
    recorder.end_epoch({"metrics": {"loss": 9.0}})
    records = own_records(recorder)
    (restore,) = [r for r in records if r["type"] == "restore"]
    assert "parent" not in restore
    assert not [r for r in records if r["type"] == "finding"]


def test_listens_through_add_listener_when_the_recorder_has_one() -> None:
    class Stub:
        run_id = "stub"
        trace_dir = "/nonexistent"

        def __init__(self) -> None:
            self.listeners: list[Any] = []

        def add_listener(self, fn: Any, part: str) -> None:
            assert part == "restore diagnostics"
            self.listeners.append(fn)

    stub = Stub()
    watcher = ResumeWatcher(stub)
    assert watcher.attach() and watcher.attach() and stub.listeners == [watcher.observe]


def test_a_restore_of_the_run_s_own_save_is_judged_as_report_judges_it(
    tmp_path: Path, recorder: Recorder
) -> None:
    # keras#2378's shape in one process: epochs, a save, load_weights (the optimizer comes back
    # at step 500), then compile() anew and fit from step 0. No parent trace: the watcher reads
    # this run's epochs before the restore from its own trace, so it says what `report` says.
    ckpt = tmp_path / "w.weights.h5"
    ckpt.write_bytes(b"weights")
    for n, loss in enumerate((1.0, 0.8, 0.7, 0.65)):
        recorder.begin_epoch(n, "loop")
        recorder.end_epoch({"metrics": {"loss": loss}, "iterations": 125 * (n + 1), "steps": 125})
    time.sleep(0.15)  # the load (0.1 s) began after the last epoch ended
    watcher = ResumeWatcher(recorder)
    watcher.attach()
    events = SaveEvents(recorder.emit, on_restore=watcher.on_restore)
    optimizer = {"class": "RMSprop", "iterations": 500, "built": True}
    events.restored(
        str(ckpt), cfiles.WEIGHTS_H5, "Model.load_weights", 0.1, [], optimizer=optimizer, file_iterations=500
    )
    events.close(5)
    recorder.begin_epoch(0, "loop")
    recorder.end_epoch({"metrics": {"loss": 0.6}, "iterations": 125, "steps": 125})
    (f,) = [r for r in own_records(recorder) if r["type"] == "finding"]
    assert f["kind"] == "optimizer_state_not_restored" and f["severity"] == "info", f
    assert "then compile() made a new one; no loss jump followed (0.65 -> 0.6)" in f["title"]


def test_a_model_loaded_for_every_request_is_looked_up_once_and_held_bounded(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tensorflow#40171's server loads its SavedModel for every request: each restore searched
    the trace directory for its parent and judged every restore so far (5.7 s of the hook's
    CPU over 400 loads, and a list of restores that grew without end)."""
    from epochwatch.checkpoints import resume

    ckpt = tmp_path / "model.keras"
    ckpt.write_bytes(b"checkpoint bytes")
    sha = hash_files(cfiles.snapshot([str(ckpt)]), None)
    write_parent(tmp_path, ckpt, sha)
    searched: list[str] = []
    real = resume.find_parent
    monkeypatch.setattr(resume, "find_parent", lambda *a, **k: (searched.append(a[1]), real(*a, **k))[1])
    watcher = ResumeWatcher(recorder)
    events = SaveEvents(recorder.emit, on_restore=watcher.on_restore)
    for _ in range(3 * resume.RESTORES_KEPT):
        events.restored(str(ckpt), cfiles.KERAS, "keras.saving.load_model", 0.01, [])
        events.worker.drain(5)
    events.close(5)
    restores = [r for r in own_records(recorder) if r["type"] == "restore"]
    assert len(restores) == 3 * resume.RESTORES_KEPT
    assert all(r["parent"]["run_id"] == "parent" for r in restores)  # each linked all the same
    assert searched == [sha]
    assert (
        len(watcher._child.restores) == resume.RESTORES_KEPT and len(watcher._links) == resume.RESTORES_KEPT
    )


def test_a_restore_of_nothing_then_a_save_over_another_runs_checkpoint_is_said(
    tmp_path: Path, recorder: Recorder
) -> None:
    """RouteNet-Erlang#8: the `checkpoint` state file lost, `ckpt.restore(manager.latest_checkpoint)`
    is `restore(None)`: nothing restored, nothing said, and the new run's CheckpointManager
    wrote ckpt-1.. over the previous run's. A first run into an empty directory is quiet."""
    ckpt = tmp_path / "ckpt_dir" / "ckpt-1.index"
    ckpt.parent.mkdir()
    write_parent(tmp_path, ckpt, "0" * 64)
    ckpt.write_bytes(b"this run's first checkpoint")
    watcher = ResumeWatcher(recorder)
    events = SaveEvents(recorder.emit, on_restore=watcher.on_restore, on_save=watcher.on_save)
    watcher.restored_nothing("tf.train.Checkpoint.restore")
    events.saved(str(ckpt), cfiles.KERAS, "tf.train.CheckpointManager.save", 0.01)
    events.saved(str(ckpt), cfiles.KERAS, "tf.train.CheckpointManager.save", 0.01)  # judged once
    events.close(5)
    (f,) = [r for r in own_records(recorder) if r["type"] == "finding"]
    assert f["kind"] == "nothing_restored" and f["severity"] == "warning"
    assert "restore(None) restored nothing" in f["title"] and "over run parent's checkpoint" in f["title"]
    assert f["evidence"]["overwritten_run"] == "parent" and "directory of its own" in f["hint"]
    # A save where no other run saved: a first run, quiet.
    other = tmp_path / "fresh" / "ckpt-1.index"
    other.parent.mkdir()
    other.write_bytes(b"first")
    assert watcher.on_save({"path": str(other), "sha256": "1" * 64}) == []  # nothing pending
    watcher.restored_nothing("tf.train.Checkpoint.restore")
    assert watcher.on_save({"path": str(other), "sha256": "1" * 64}) == []


def test_a_restore_of_a_file_this_run_saved_again_is_not_the_parents_modified(
    tmp_path: Path, recorder: Recorder
) -> None:
    """keras#17012: the parent saved best.weights.h5 (ModelCheckpoint, save_best_only); the
    resumed run's ModelCheckpoint saved it again, and the script's load_weights of it at the
    end read as the parent's file rewritten by "another job" (warning checkpoint_modified):
    no other run saved these bytes, so the path led to the parent's older save. Bytes that
    changed after the parent's save, where this run never saved, are still said."""
    ckpt = tmp_path / "best.weights.h5"
    write_parent(tmp_path, ckpt, "0" * 64, env=collect_fingerprint())
    watcher = ResumeWatcher(recorder)
    watcher.attach()
    events = SaveEvents(recorder.emit, on_restore=watcher.on_restore, on_save=watcher.on_save)
    ckpt.write_bytes(b"this run's best weights")
    events.saved(str(ckpt), cfiles.WEIGHTS_H5, "ModelCheckpoint", 0.01)
    events.worker.drain(5)
    time.sleep(0.01)
    events.restored(str(ckpt), cfiles.WEIGHTS_H5, "Model.load_weights", 0.01, [])
    events.close(5)
    records = own_records(recorder)
    (restore,) = [r for r in records if r["type"] == "restore"]
    assert "parent" not in restore, restore["parent"]
    assert [r["kind"] for r in records if r["type"] == "finding"] == []
    # The file rewritten since, by nobody traced, then loaded by another run: modified.
    ckpt.write_bytes(b"bytes nobody traced saved")
    stranger = Recorder(
        {"EPOCHWATCH_DIR": str(tmp_path / "traces"), "EPOCHWATCH_SOCKET": str(tmp_path / "none.sock")}
    )
    try:
        watcher = ResumeWatcher(stranger)
        watcher.attach()
        events = SaveEvents(stranger.emit, on_restore=watcher.on_restore, on_save=watcher.on_save)
        events.restored(str(ckpt), cfiles.WEIGHTS_H5, "Model.load_weights", 0.01, [])
        events.close(5)
        kinds = [r["kind"] for r in own_records(stranger) if r["type"] == "finding"]
    finally:
        stranger.finish("completed")
    assert kinds == ["checkpoint_modified"], kinds


class _UnderADaemon:
    """What the watcher reads of a Recorder whose run a daemon holds: its trace is in the
    daemon's directory, known once the run has started."""

    def __init__(self, root: Path) -> None:
        self.trace_dir = root / "epochwatch-traces"  # the embedded fallback: nothing of it there
        self.run_id = "child"
        self.sink_description = "the daemon"
        self.remote_detection = True
        self.trace_path: str | None = None
        self.own_traces: tuple[str, ...] = ()  # the user's other traces the welcome named
        self._held = root / "daemon" / "traces" / "child.jsonl"

    def start(self) -> bool:
        self.trace_path = str(self._held)
        return True


def test_under_a_daemon_a_restores_parent_is_found_among_the_daemons_traces(tmp_path: Path) -> None:
    """tensorflow#44867 resumed under a daemon: the hook looked for the parent only in its
    embedded directory, where nothing of it was written, so no restore check had a parent
    (optimizer_state_not_restored was said embedded, not under the daemon)."""
    ckpt = tmp_path / "ckpt-4.index"
    ckpt.write_bytes(b"checkpoint bytes")
    sha = hash_files(cfiles.snapshot([str(ckpt)]), None)
    (tmp_path / "daemon" / "traces").mkdir(parents=True)
    write_parent(tmp_path / "daemon", ckpt, sha)
    watcher = ResumeWatcher(_UnderADaemon(tmp_path))
    record = {"path": str(ckpt), "sha256": sha, "restored_at": 2000.0, "format": cfiles.TF_CHECKPOINT}
    assert watcher.on_restore(record) == []  # the daemon judges it: only the link is the hook's
    assert record["parent"]["run_id"] == "parent" and record["parent"]["match"] == "sha256"


def test_under_a_root_daemon_a_restores_parent_is_found_by_the_names_it_gave(tmp_path: Path) -> None:
    """On a shared host the daemon's `traces/` is 0711: the user cannot list it, so a resumed
    run there never found its parent. The daemon's welcome names the user's own traces, and
    the watcher looks at them though it lists nothing there (here the parent is in another
    directory than the run's trace, which is all the scan of directories would see)."""
    ckpt = tmp_path / "ckpt-4.index"
    ckpt.write_bytes(b"checkpoint bytes")
    sha = hash_files(cfiles.snapshot([str(ckpt)]), None)
    (tmp_path / "unlisted" / "traces").mkdir(parents=True)
    write_parent(tmp_path / "unlisted", ckpt, sha)
    run = _UnderADaemon(tmp_path)
    run.own_traces = (str(tmp_path / "unlisted" / "traces" / "parent.jsonl"),)
    record = {"path": str(ckpt), "sha256": sha, "restored_at": 2000.0, "format": cfiles.TF_CHECKPOINT}
    assert ResumeWatcher(run).on_restore(record) == []
    assert record["parent"]["run_id"] == "parent" and record["parent"]["trace"].endswith(
        "unlisted/traces/parent.jsonl"
    )


class _WelcomedLate(_UnderADaemon):
    """A run whose daemon's welcome arrives on the sender thread a moment after the start."""

    def __init__(self, root: Path, names: tuple[str, ...]) -> None:
        super().__init__(root)
        self._welcomed = threading.Event()
        self._names = names

    def start(self) -> bool:
        def welcome() -> None:
            time.sleep(0.2)
            self.trace_path, self.own_traces = str(self._held), self._names
            self._welcomed.set()

        threading.Thread(target=welcome, daemon=True).start()
        return True

    def await_daemon(self, timeout: float) -> None:
        self._welcomed.wait(timeout)


def test_a_restore_right_after_the_start_waits_for_the_daemons_welcome(tmp_path: Path) -> None:
    """tensorflow#44867's resumed process under a daemon restores at once: the lookup ran
    before the welcome had said where the run's trace and the user's others are, and found
    no parent (no optimizer_state_not_restored under the daemon, said embedded)."""
    ckpt = tmp_path / "ckpt-4.index"
    ckpt.write_bytes(b"checkpoint bytes")
    sha = hash_files(cfiles.snapshot([str(ckpt)]), None)
    (tmp_path / "unlisted" / "traces").mkdir(parents=True)
    write_parent(tmp_path / "unlisted", ckpt, sha)
    run = _WelcomedLate(tmp_path, (str(tmp_path / "unlisted" / "traces" / "parent.jsonl"),))
    record = {"path": str(ckpt), "sha256": sha, "restored_at": 2000.0, "format": cfiles.TF_CHECKPOINT}
    assert ResumeWatcher(run).on_restore(record) == []
    assert record["parent"]["run_id"] == "parent"
