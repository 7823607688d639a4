"""NVML off the training thread: a hanging driver call costs an epoch at most the deadline.

The real NvmlSampler runs against the suite's pynvml-shaped module, made to hang the way a
wedged driver does (FAKE_NVML_HANG_SECONDS): nothing else is simulated.
"""

from __future__ import annotations

import time

import pytest

from epochwatch.guard import Guard
from epochwatch.samplers.background import BackgroundSampler, SamplerHung
from epochwatch.samplers.nvml import NvmlSampler
from tests.fakes import fake_pynvml


def _timed(fn: object) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()  # type: ignore[operator]
    return out, time.perf_counter() - t0


def test_a_fast_sampler_answers_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_NVML_HANG_SECONDS", raising=False)
    sampler = BackgroundSampler(NvmlSampler(nvml=fake_pynvml))
    try:
        assert sampler.name == "gpu"
        block = sampler.sample()
        assert block is not None and block["devices"][0]["utilization_pct"] == 50
        inventory = sampler.inventory()
        assert inventory is not None and inventory["gpus"][0]["name"] == "NVIDIA Fake A100"
    finally:
        sampler.close()


def test_a_hanging_call_costs_an_epoch_the_deadline_and_its_reading_comes_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sampler = BackgroundSampler(NvmlSampler(nvml=fake_pynvml), deadline=0.05, hang_after=30)
    try:
        sampler.sample()  # NVML initialised while it answers
        monkeypatch.setenv("FAKE_NVML_HANG_SECONDS", "1.5")
        block, took = _timed(sampler.sample)
        assert block is None and took < 1.0  # without the thread: 1.5 s on the training thread
        time.sleep(1.7)
        monkeypatch.delenv("FAKE_NVML_HANG_SECONDS")
        block, took = _timed(sampler.sample)
        assert block is not None and block["devices"][0]["utilization_pct"] == 50  # fresh, on time
    finally:
        sampler.close()


def test_a_hung_sampler_is_reported_once_and_switched_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    guard = Guard()
    sampler = BackgroundSampler(NvmlSampler(nvml=fake_pynvml), deadline=0.05, hang_after=0.3)
    try:
        guard.run("gpu sampler", sampler.sample, None)
        monkeypatch.setenv("FAKE_NVML_HANG_SECONDS", "1.5")
        calls = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 0.8:  # epochs of 0.1 s while the driver hangs
            calls.append(_timed(lambda: guard.run("gpu sampler", sampler.sample, None))[1])
            time.sleep(0.1)
        assert max(calls) < 0.75
        assert not guard.enabled("gpu sampler")
        assert SamplerHung.__name__ in guard.disabled["gpu sampler"]
        err = capsys.readouterr().err
        assert err.count("gpu sampler disabled") == 1, err
    finally:
        sampler.close()
