"""The Recorder without TensorFlow: records, ordering, overhead, failing parts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from epochwatch.analysis.worker import SHARE, START_CREDIT, AnalysisWorker
from epochwatch.recorder import Recorder
from epochwatch.trace.reader import iter_records


@pytest.fixture
def recorder(tmp_path: Path) -> Any:
    rec = Recorder(
        {"EPOCHWATCH_DIR": str(tmp_path / "traces"), "EPOCHWATCH_SOCKET": str(tmp_path / "none.sock")}
    )
    yield rec
    rec.finish("completed")


def _records(tmp_path: Path) -> list[dict[str, Any]]:
    (trace,) = (tmp_path / "traces").glob("*.jsonl")
    return list(iter_records(trace))


def test_epochs_with_logged_values_get_their_mean(recorder: Recorder, tmp_path: Path) -> None:
    for n in range(2):
        recorder.begin_epoch(n, "loop")
        for v in (1.0, 2.0, 6.0):
            recorder.log({"loss": v})
        recorder.end_epoch()
    recorder.finish("completed")
    records = _records(tmp_path)
    assert [r["type"] for r in records][:1] == ["run_start"]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [e["metrics"]["loss"] for e in epochs] == [3.0, 3.0]
    assert all(e["steps"] == 3 and e["overhead_seconds"] >= 0 for e in epochs)
    end = records[-1]
    assert end["type"] == "run_end" and end["epochs"] == 2 and end["overhead_seconds"] > 0


def test_values_that_are_not_numbers_are_converted_at_epoch_end(recorder: Recorder, tmp_path: Path) -> None:
    class Tensorish:
        def __init__(self, v: float) -> None:
            self.v = v
            self.converted = False

        def __float__(self) -> float:
            self.converted = True
            return self.v

    values = [Tensorish(1.0), Tensorish(3.0)]
    recorder.begin_epoch(0, "loop")
    for v in values:
        recorder.log({"loss": v, "name": "not a number"})
    assert not any(v.converted for v in values)  # no sync per step
    recorder.end_epoch()
    recorder.finish("completed")
    (epoch,) = [r for r in _records(tmp_path) if r["type"] == "epoch"]
    assert epoch["metrics"] == {"loss": 2.0}


def test_abandoned_epoch_writes_nothing(recorder: Recorder, tmp_path: Path) -> None:
    recorder.begin_epoch(0, "loop")
    recorder.abandon_epoch()
    recorder.begin_epoch(1, "loop")
    recorder.end_epoch()
    recorder.finish("raised", ValueError("boom\nsecond line"))
    records = _records(tmp_path)
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1]
    assert records[-1]["ended"] == "raised" and records[-1]["exception"] == "ValueError"
    assert records[-1]["message"] == "boom"


class _FailingSink:
    description = "a sink on a full disk"

    def __init__(self) -> None:
        self.calls = 0

    def write(self, record: dict[str, Any]) -> None:
        self.calls += 1
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_a_failing_sink_is_reported_once_and_dropped(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = _FailingSink()
    monkeypatch.setattr("epochwatch.recorder.open_sink", lambda run_id, environ: sink)
    for n in range(5):
        recorder.begin_epoch(n, "loop")
        recorder.end_epoch()
    recorder.finish("completed")
    err = capsys.readouterr().err
    assert err.count("trace writer disabled: cannot write the trace (No space left on device)") == 1
    assert sink.calls == 1


def test_watch_before_and_after_start(recorder: Recorder, tmp_path: Path) -> None:
    early, late = tmp_path / "early", tmp_path / "late"
    early.mkdir()
    late.mkdir()
    recorder.watch(early)
    recorder.begin_epoch(0, "loop")
    recorder.watch(late)
    recorder.watch(late)  # once only
    recorder.end_epoch()
    recorder.finish("completed")
    watches = [(r["path"], r["role"]) for r in _records(tmp_path) if r["type"] == "watch"]
    assert (str(early), "user") in watches and watches.count((str(late), "user")) == 1


class _SlowAnalyzer:
    def __init__(self) -> None:
        self.seen = 0
        self.evaluated = 0
        self.spent: list[float] = []

    def add(self, record: dict[str, Any], *, evaluate: bool = True) -> list[dict[str, Any]]:
        if record.get("type") == "epoch":
            self.seen += 1
            if evaluate:
                self.evaluated += 1
                t0 = time.thread_time()
                end = time.perf_counter() + 0.002
                while time.perf_counter() < end:  # busy: the budget counts CPU time
                    pass
                self.spent.append(time.thread_time() - t0)
        return []


def test_online_detection_stays_within_its_time_budget() -> None:
    """Tiny epochs (1 ms): after the starting allowance detectors run rarely; every epoch is kept."""
    slow = _SlowAnalyzer()
    worker = AnalysisWorker(slow, lambda found: None, lambda exc: None)
    for n in range(300):
        worker.process({"type": "epoch", "seconds": 0.001, "epoch": n})
    assert slow.seen == 300
    budget = START_CREDIT + SHARE * 300 * 0.001
    assert sum(slow.spent) <= budget + max(slow.spent)  # at most one step over, however slow the machine
    assert 1 <= slow.evaluated < 100
    # Long epochs (a minute each earns 0.12 s of credit) get their detection at every epoch.
    slow.evaluated = 0
    for n in range(20):
        worker.process({"type": "epoch", "seconds": 60.0, "epoch": 300 + n})
    assert slow.evaluated == 20


def test_online_detection_runs_off_the_training_thread_and_is_still_counted(
    recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The detectors run on the analysis thread; their CPU time is in overhead_seconds."""
    import threading

    threads: list[str] = []

    class Spy(_SlowAnalyzer):
        def add(self, record: dict[str, Any], *, evaluate: bool = True) -> list[dict[str, Any]]:
            threads.append(threading.current_thread().name)
            super().add(record, evaluate=True)
            if record.get("type") == "epoch" and record["epoch"] == 1:
                return [{"type": "finding", "run_id": "r", "kind": "slowdown", "epoch": 1}]
            return []

    spy = Spy()
    monkeypatch.setattr("epochwatch.analysis.online.OnlineAnalyzer", lambda *args, **options: spy)
    recorder.start()
    for n in range(4):
        recorder.begin_epoch(n, "loop")
        recorder.end_epoch()
        recorder.flush_analysis()
    assert set(threads) == {"epochwatch-analysis"}
    recorder.finish("completed")
    records = _records(tmp_path)
    assert [r["kind"] for r in records if r["type"] == "finding"] == ["slowdown"]
    types = [r["type"] for r in records]
    assert types.index("finding") > types.index("epoch")
    end = records[-1]
    # Four busy 2 ms detector steps on another thread: all of it is charged to the run.
    assert end["overhead_background_seconds"] >= sum(spy.spent) * 0.9
    assert end["overhead_seconds"] >= end["overhead_background_seconds"]


def test_listeners_see_every_record_and_finishers_run_before_run_end(
    recorder: Recorder, tmp_path: Path
) -> None:
    seen: list[str] = []
    recorder.add_listener(lambda rec: seen.append(rec["type"]))
    recorder.add_listener(lambda rec: 1 / 0, "broken listener")  # disables only itself
    recorder.on_finish(lambda: recorder.emit("notice", part="test", message="flushed"))
    recorder.begin_epoch(0, "loop")
    recorder.end_epoch()
    recorder.finish("completed")
    assert seen[0] == "run_start" and "epoch" in seen and seen[-1] == "run_end"
    types = [r["type"] for r in _records(tmp_path)]
    assert types.index("notice") < types.index("run_end")
    assert "broken listener" in recorder.guard.disabled


def test_a_finisher_may_wait_for_a_thread_that_emits(recorder: Recorder, tmp_path: Path) -> None:
    """The restore diagnostics flush their last hashes from a worker thread at the run's end."""
    import threading

    def flush() -> None:
        worker = threading.Thread(target=lambda: recorder.emit("save", path="/x", sha256="0" * 64))
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive()

    recorder.on_finish(flush)
    recorder.begin_epoch(0, "loop")
    recorder.end_epoch()
    recorder.finish("completed")
    types = [r["type"] for r in _records(tmp_path)]
    assert types[-2:] == ["save", "run_end"]


def test_a_hung_nvml_does_not_hold_the_training_thread_at_run_start(
    recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NVML answers 1.5 s late (a wedged driver): the run starts at once without GPU fields,
    and its epochs get them once NVML answers (the pynvml-shaped fake is the real sampler's)."""
    from epochwatch.samplers import process
    from epochwatch.samplers.background import BackgroundSampler
    from epochwatch.samplers.nvml import NvmlSampler
    from tests.fakes import fake_pynvml

    monkeypatch.setenv("FAKE_NVML_HANG_SECONDS", "1.5")
    monkeypatch.setattr(process, "gpu", lambda pid: BackgroundSampler(NvmlSampler(pid, nvml=fake_pynvml)))
    t0 = time.perf_counter()
    recorder.begin_epoch(0, "loop")  # starts the run: NVML's first calls hang on its thread
    start_cost = time.perf_counter() - t0
    recorder.end_epoch()
    monkeypatch.delenv("FAKE_NVML_HANG_SECONDS")
    time.sleep(1.6)  # NVML answers
    for n in (1, 2):
        recorder.begin_epoch(n, "loop")
        recorder.end_epoch()
    recorder.finish("completed")
    records = _records(tmp_path)
    assert start_cost < 0.5, f"the run's start waited {start_cost:.2f} s for NVML"
    assert "gpus" not in records[0]["env"]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert "gpu" not in epochs[0] and all("gpu" in e for e in epochs[1:])
    assert records[-1]["type"] == "run_end" and not records[-1].get("disabled")


def test_only_a_non_zero_exit_out_of_training_is_how_the_run_ended(recorder: Recorder) -> None:
    """sys.exit(3) from a callback ended the run 'completed' (SystemExit never reaches
    sys.excepthook); sys.exit(0) or None, and other exceptions (caught or said by the
    excepthook), are not this record's."""
    for exc in (SystemExit(0), SystemExit(None), SystemExit(), KeyboardInterrupt(), ValueError("x")):
        recorder.escaped(exc)
    assert recorder.exit_seen is None
    three = SystemExit(3)
    recorder.escaped(three)
    assert recorder.exit_seen is three
