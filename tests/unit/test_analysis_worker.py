"""Online detection on its own thread gives the same findings as `report`'s replay."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from epochwatch.analysis.engine import analyze
from epochwatch.analysis.guarded import GuardedAnalyzer
from epochwatch.analysis.online import OnlineAnalyzer
from epochwatch.analysis.run import Run
from epochwatch.analysis.worker import AnalysisWorker
from tests.unit.test_detectors_online import _keyed, _troubled


def test_the_analysis_thread_and_the_offline_replay_agree() -> None:
    records = _troubled()
    run = Run("troubled")
    for r in records:
        run.add(r)
    offline = analyze(run)
    emitted: list[dict[str, Any]] = []
    threads: set[str] = set()

    def on_findings(found: list[dict[str, Any]]) -> None:
        threads.add(threading.current_thread().name)
        emitted.extend(found)

    errors: list[BaseException] = []
    # share=1: the time budget never binds, so every epoch is judged, as offline.
    worker = AnalysisWorker(OnlineAnalyzer(records[0]), on_findings, errors.append, share=1.0)
    for r in records[1:]:
        assert worker.submit(r)
    assert worker.close(timeout=60)
    assert not errors
    assert threads == {"epochwatch-analysis"}
    assert {f.kind for f in offline} >= {"slowdown", "host_memory_growth", "retrace_storm", "disk_growth"}
    assert _keyed(offline) == _keyed(emitted)
    assert worker.cpu_seconds > 0


def test_a_full_queue_drops_instead_of_blocking_and_a_failure_is_handed_back() -> None:
    gate = threading.Event()

    class Stuck:
        def add(self, record: dict[str, Any], *, evaluate: bool = True) -> list[dict[str, Any]]:
            gate.wait(10)
            raise RuntimeError("detector bug")

    errors: list[BaseException] = []
    worker = AnalysisWorker(Stuck(), lambda found: None, errors.append, limit=3)
    accepted = [worker.submit({"type": "epoch", "seconds": 1.0, "epoch": n}) for n in range(10)]
    assert accepted.count(False) >= 6 and worker.dropped == accepted.count(False)
    gate.set()
    assert worker.close(timeout=10)
    # Falling behind is said once; the thread stops at its first failure.
    assert [type(e).__name__ for e in errors] == ["FellBehind", "RuntimeError"]
    assert str(errors[1]) == "detector bug"
    assert not worker.submit({"type": "epoch", "seconds": 1.0, "epoch": 11})


def test_the_guarded_analyzer_finds_as_the_analyzer_does_and_a_failure_is_said_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hook's and the daemon's analyzer: the same findings as OnlineAnalyzer with updates,
    and a detector that raises is handed to `on_error` once, then detection is off."""
    records = _troubled()
    plain = OnlineAnalyzer(records[0], updates=True)
    errors: list[BaseException] = []
    guarded = GuardedAnalyzer(errors.append)
    expected = [f for r in records[1:] for f in plain.add(r)] + plain.finish()
    found = [f for r in records for f in guarded.add(r)] + guarded.finish()
    assert found and _keyed(found) == _keyed(expected) and not errors

    def broken(self: OnlineAnalyzer, rec: dict[str, Any], *, evaluate: bool = True) -> list[Any]:
        raise ValueError("detector bug")

    monkeypatch.setattr(OnlineAnalyzer, "add", broken)
    failing = GuardedAnalyzer(errors.append)
    assert [f for r in records for f in failing.add(r)] + failing.finish() == []
    assert [str(e) for e in errors] == ["detector bug"] and failing.failed
