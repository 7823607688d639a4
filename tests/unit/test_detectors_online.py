"""The engine, online and offline: persistence, once per (kind, target), same answers."""

from __future__ import annotations

import random
import time
from typing import Any

from bench import synthetic as syn
from epochwatch.analysis.detectors import MODULES, Detector, all_detectors
from epochwatch.analysis.engine import Engine, analyze, replay_points
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.online import SERIES_LIMIT, OnlineAnalyzer
from epochwatch.analysis.run import Run
from epochwatch.analysis.view import RunAtEpoch

GIB, MIB = syn.GIB, syn.MIB


def _troubled(n: int = 60, seed: int = 1) -> list[dict[str, Any]]:
    """Slowdown, host leak, a retrace storm and a growing directory, all in one run."""
    rng = random.Random(seed)

    def make(i: int) -> dict[str, Any]:
        fn: dict[str, Any] = {}
        if i >= 3:
            c = {"arg": "scale", "change": "value", "was": f"float {i}", "now": f"float {i + 1}"}
            fn = {"step": {"new": 1, "total": i, "causes": [c]}}
        return {
            "seconds": 4.0 if i == 0 else syn.noisy(rng, 1 + 0.02 * i, 0.04),
            "host": syn.host_block(2 * GIB + 30 * MIB * i, cpu=syn.noisy(rng, 0.9 * (1 + 0.02 * i), 0.02)),
            "dirs": {"/nonexistent/ck": {"bytes": 40 * MIB * i, "files": i, "role": "checkpoint"}},
            "retraces": {"new": 1 if fn else 0, "functions": fn},
        }

    return syn.trace(n, make, planned=200, run_id="troubled")


def _keyed(fs: list[Any]) -> list[tuple[str, str | None, int | None, str]]:
    out = []
    for f in fs:
        if isinstance(f, Finding):
            out.append((f.kind, f.target, f.epoch, f.severity))
        else:
            out.append((f["kind"], f["target"], f["epoch"], f["severity"]))
    return sorted(out, key=str)


def test_online_and_offline_agree() -> None:
    records = _troubled()
    run = Run("troubled")
    for r in records:
        run.add(r)
    offline = analyze(run)
    online = OnlineAnalyzer(records[0])
    emitted: list[dict[str, Any]] = []
    for r in records[1:]:
        emitted.extend(online.add(r))
    assert {f.kind for f in offline} >= {"slowdown", "host_memory_growth", "retrace_storm", "disk_growth"}
    assert _keyed(offline) == _keyed(emitted)
    by_key = {(f.kind, f.target): f for f in offline}
    for e in emitted:
        assert e["type"] == "finding" and e["run_id"] == "troubled"
        assert by_key[(e["kind"], e["target"])].to_dict()["evidence"] == e["evidence"]


def test_online_emits_once_per_kind_and_target() -> None:
    online = OnlineAnalyzer()
    seen: list[tuple[str, str | None]] = []
    for r in _troubled(120):
        seen += [(f["kind"], f["target"]) for f in online.add(r)]
    assert len(seen) == len(set(seen))
    assert online.run.run_id == "troubled"


def test_online_ignores_findings_coming_back_and_other_records() -> None:
    online = OnlineAnalyzer()
    assert online.add({"type": "finding", "run_id": "x", "kind": "slowdown"}) == []
    assert online.add({"type": "sample", "run_id": "x", "rss_bytes": 5}) == []
    assert online.add({"type": "something_new", "run_id": "x"}) == []


def test_online_state_stays_bounded_and_cheap() -> None:
    online = OnlineAnalyzer()
    rng = random.Random(2)
    records = syn.trace(3000, lambda i: {"seconds": syn.noisy(rng, 1.0, 0.1), "host": syn.host_block(GIB)})
    t0 = time.perf_counter()
    for r in records:
        online.add(r)
    per_epoch = (time.perf_counter() - t0) / 3000
    s = online.run.series
    assert s.count == 3000
    assert len(s.cols["seconds"]) <= 2 * SERIES_LIMIT
    assert len(online.run.epochs) <= 16
    assert per_epoch < 0.005, f"{per_epoch * 1e3:.2f} ms per epoch"


class _Flaky:
    """A detector that holds at the epochs given."""

    def __init__(self, holds: set[int]) -> None:
        self.holds = holds

    def __call__(self, view: RunAtEpoch) -> list[Finding]:
        return (
            [Finding("slowdown", "warning", "t", target="x", epoch=view.last)]
            if view.last in self.holds
            else []
        )


def _step_all(detector: Detector, n: int) -> list[int | None]:
    run = Run("t")
    engine = Engine([detector])
    out = []
    for r in syn.trace(n, lambda i: {}):
        run.add(r)
        if r["type"] == "epoch":
            out += [f.epoch for f in engine.step(RunAtEpoch(run))]
    return out


def test_persistence_needs_consecutive_epochs() -> None:
    assert _step_all(Detector("t", _Flaky({2, 3, 5, 6}), persistence=3), 10) == []
    assert _step_all(Detector("t", _Flaky({2, 3, 5, 6})), 10) == [2]
    assert _step_all(Detector("t", _Flaky({2, 3, 5, 6}), persistence=2), 10) == [3]
    assert _step_all(Detector("t", _Flaky({2, 3, 4, 6, 7, 8}), persistence=3), 10) == [4]


def test_registry_has_every_family_once() -> None:
    names = [d.name for d in all_detectors()]
    assert len(names) == len(set(names))
    assert len(names) == len(MODULES)
    for kind in (
        "slowdown",
        "host_memory_growth",
        "gpu_memory_growth",
        "retrace_storm",
        "disk_growth",
        "swap_pressure",
        "gpu_memory_pressure",
        "host_contention",
        "gpu_throttling",
    ):
        assert kind in names


def test_replay_of_long_runs_is_bounded() -> None:
    assert list(replay_points(5)) == [1, 2, 3, 4, 5]
    points = list(replay_points(100_000))
    assert len(points) < 4100 and points[-1] == 100_000 and points == sorted(set(points))


def test_run_keeps_bounded_whole_records_but_every_epoch_in_the_series() -> None:
    run = Run("t", max_epoch_records=100)
    for r in syn.trace(1000, lambda i: {"seconds": 1.0 + i}):
        run.add(r)
    assert run.series.count == 1000
    assert len(run.epochs) <= 100
    assert run.epochs[0]["epoch"] == 0 and run.epochs[-1]["epoch"] == 999
    assert run.epochs_dropped + len(run.epochs) == 1000
    assert list(run.series.cols["seconds"])[::333] == [1.0, 334.0, 667.0, 1000.0]
