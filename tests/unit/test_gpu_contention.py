"""gpu_contention: NVML's per-process utilisation (the fake pynvml) through the daemon's
contention scan into sample records, and the detector on the run they make."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench import synthetic as syn
from epochwatch.analysis.engine import analyze
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.run import Run
from epochwatch.daemon.contention import ContentionScanner
from epochwatch.samplers.nvml import NvmlSampler
from tests.fakes import fake_pynvml

ME = os.getpid()
OTHER = os.getppid()  # a process that exists, so the scan can name it
GONE = 999_999_999  # listed by NVML, gone from /proc by the time the scan looks


@pytest.fixture
def nvml() -> Iterator[Any]:
    saved = {k: (dict(v) if isinstance(v, dict) else v) for k, v in fake_pynvml.STATE.items()}
    fake_pynvml.STATE.update(own_sm=60, others={OTHER: 0, GONE: 0}, vanished={}, utilization="ok")
    yield fake_pynvml.STATE
    fake_pynvml.STATE.clear()
    fake_pynvml.STATE.update(saved)


def _run(
    state: dict[str, Any],
    n: int,
    others_sm: Callable[[int], int],
    seconds: Callable[[int], float],
    vanished: Callable[[int], dict[int, int]] = lambda i: {},
) -> list[Finding]:
    """n epochs of a run whose process is this one: before each epoch the fake GPU's other
    processes take others_sm(i)% and the daemon's scan runs; the epoch takes seconds(i)."""
    scanner = ContentionScanner(NvmlSampler(nvml=fake_pynvml).gpu_processes)
    scanner.scan()
    records = [syn.run_start()]
    t = syn.T0 + 1.0
    for i in range(n):
        state["others"][OTHER] = others_sm(i)
        state["vanished"] = vanished(i)
        scanner.scan(max_age=1e9)
        cont = scanner.for_run(ME, top=3, uid=os.getuid())
        records.append({"type": "sample", "run_id": "synthetic", "t": t, "contention": cont})
        gpu = {"devices": [{"index": 0, "name": "NVIDIA Fake A100", "process_memory_bytes": 1 << 30}]}
        records.append(syn.epoch_record("synthetic", i, t, seconds(i), gpu=gpu))
        t += seconds(i)
    run = Run("synthetic")
    for rec in records:
        run.add(rec)
    return analyze(run)


def _of(found: list[Finding], kind: str) -> list[Finding]:
    return [f for f in found if f.kind == kind]


def test_scan_carries_each_process_share_of_the_gpu(nvml: dict[str, Any]) -> None:
    nvml["others"][OTHER] = 70
    nvml["vanished"] = {424242: 90}  # exited between NVML's process list and its utilisation
    scanner = ContentionScanner(NvmlSampler(nvml=fake_pynvml).gpu_processes)
    scanner.scan()
    scanner.scan()
    view = scanner.for_run(ME, top=3, uid=os.getuid())
    assert view is not None
    by_pid = {e["pid"]: e for e in view["gpu"]}
    assert set(by_pid) == {OTHER, GONE}  # the run itself and the vanished pid are not there
    assert by_pid[OTHER]["sm_util_pct"] == 70.0 and by_pid[OTHER]["mem_util_pct"] == 35.0
    assert by_pid[OTHER]["name"] and by_pid[OTHER]["user"]
    assert "name" not in by_pid[GONE] and by_pid[GONE]["sm_util_pct"] == 0.0
    (mine,) = view["gpu_self"]
    assert (mine["device"], mine["sm_util_pct"], mine["mem_util_pct"]) == (0, 60.0, 30.0)
    # a run of another user sees that process by its share (and NVML's pid) only
    theirs = scanner.for_run(ME, top=3, uid=os.getuid() + 12345)
    assert theirs is not None
    (seen,) = [e for e in theirs["gpu"] if e["pid"] == OTHER]
    assert "name" not in seen and "user" not in seen and seen["sm_util_pct"] == 70.0


def test_another_process_takes_the_gpu_and_the_run_slows(nvml: dict[str, Any]) -> None:
    rng = random.Random(1)
    found = _run(
        nvml,
        40,
        others_sm=lambda i: 65 if i >= 20 else 0,
        seconds=lambda i: syn.noisy(rng, 1.6 if i >= 20 else 1.0, 0.02),
        vanished=lambda i: {424242: 50} if i % 2 else {},
    )
    (f,) = _of(found, "gpu_contention")
    assert f.target == "GPU:0" and f.severity == "warning"
    ev = f.evidence
    assert ev["since_epoch"] == 20 and ev["others_sm_pct"] == 65.0 and ev["own_sm_pct"] == 60.0
    assert 1.45 < ev["slowdown_ratio"] < 1.75
    assert ev["processes"][0]["pid"] == OTHER and ev["processes"][0]["user"]
    assert 424242 not in [p["pid"] for p in ev["processes"]]
    assert f"pid {OTHER}" in f.title and "since epoch 21" in f.title  # since_epoch 20 (0-based)
    assert "CUDA_VISIBLE_DEVICES" in f.hint


def test_a_ramping_process_is_named_as_the_slowdown_cause(nvml: dict[str, Any]) -> None:
    rng = random.Random(2)
    found = _run(
        nvml,
        50,
        others_sm=lambda i: min(90, 3 * max(0, i - 10)),
        seconds=lambda i: syn.noisy(rng, 1.0 + 0.012 * max(0, i - 10) * 1.5, 0.02),
    )
    assert _of(found, "gpu_contention")
    (slow,) = _of(found, "slowdown")
    cause = slow.evidence["likely_causes"][0]
    assert cause["column"] == "gpu_others_sm" and cause["test"] == "mechanism"
    assert "GPU 0" in slow.title and "gpu_contention" in slow.hint


def test_others_busy_while_the_run_keeps_its_speed_is_sharing(nvml: dict[str, Any]) -> None:
    rng = random.Random(3)
    found = _run(
        nvml, 40, others_sm=lambda i: 65 if i >= 20 else 0, seconds=lambda i: syn.noisy(rng, 1.0, 0.02)
    )
    assert _of(found, "gpu_contention") == []


def test_utilisation_not_supported(nvml: dict[str, Any]) -> None:
    nvml["utilization"] = "not_supported"
    rng = random.Random(4)
    found = _run(
        nvml,
        40,
        others_sm=lambda i: 65 if i >= 20 else 0,
        seconds=lambda i: syn.noisy(rng, 1.6 if i >= 20 else 1.0, 0.02),
    )
    assert _of(found, "gpu_contention") == []  # no share known: nothing claimed


def _synthetic(device_of_run: int) -> list[Finding]:
    """Others at 60% on GPU 1 after epoch 20; the run is on `device_of_run` and slows then."""
    rng = random.Random(5)
    records = [syn.run_start()]
    t = syn.T0 + 1.0
    for i in range(40):
        busy = 60.0 if i >= 20 else 0.0
        cont = {
            "cpu": [],
            "gpu": [{"pid": 77, "device": 1, "name": "hog", "sm_util_pct": busy}],
            "gpu_self": [{"device": device_of_run, "sm_util_pct": 50.0}],
        }
        records.append({"type": "sample", "run_id": "synthetic", "t": t, "contention": cont})
        seconds = syn.noisy(rng, 1.5 if i >= 20 else 1.0, 0.02)
        records.append(syn.epoch_record("synthetic", i, t, seconds))
        t += seconds
    run = Run("synthetic")
    for rec in records:
        run.add(rec)
    return _of(analyze(run), "gpu_contention")


def test_others_on_a_gpu_this_run_does_not_use_are_not_its_contention() -> None:
    assert [f.target for f in _synthetic(device_of_run=1)] == ["GPU:1"]
    assert _synthetic(device_of_run=0) == []


def test_embedded_gpu_block_carries_the_shares(nvml: dict[str, Any]) -> None:
    nvml["others"][OTHER] = 55
    nvml["vanished"] = {424242: 90}
    sampler = NvmlSampler(nvml=fake_pynvml)
    (device,) = sampler.sample()["devices"]  # type: ignore[index]
    assert device["process_sm_pct"] == 60.0 and device["others_sm_pct"] == 55.0
    (other,) = device["others"]  # the idle GONE pid and the vanished one are not there
    assert other["pid"] == OTHER and other["sm_util_pct"] == 55.0 and other["name"]
    nvml["utilization"] = "not_supported"
    (device,) = NvmlSampler(nvml=fake_pynvml).sample()["devices"]  # type: ignore[index]
    assert not {"process_sm_pct", "others_sm_pct", "others"} & device.keys()


def test_embedded_mode_finds_gpu_contention_without_the_daemon(nvml: dict[str, Any]) -> None:
    """The hook's own gpu block (no daemon samples) is enough."""
    rng = random.Random(6)
    sampler = NvmlSampler(nvml=fake_pynvml)
    records = [syn.run_start()]
    t = syn.T0 + 1.0
    for i in range(40):
        nvml["others"][OTHER] = 70 if i >= 20 else 0
        seconds = syn.noisy(rng, 1.5 if i >= 20 else 1.0, 0.02)
        records.append(syn.epoch_record("synthetic", i, t, seconds, gpu=sampler.sample()))
        t += seconds
    run = Run("synthetic")
    for rec in records:
        run.add(rec)
    (f,) = _of(analyze(run), "gpu_contention")
    assert f.evidence["since_epoch"] == 20 and f.evidence["others_sm_pct"] == 70.0
    assert f.evidence["processes"][0]["pid"] == OTHER
