"""The Keras callback's learning-rate reads: a variable every epoch, a schedule sampled."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from epochwatch.integrations import keras_reads
from epochwatch.integrations.keras_reads import RateReader


class _Clock:
    """keras_reads' clock, advanced only by the reads' own cost: what a read costs is then the
    cost it is given, whatever the load on the machine (a sleep can take 5x longer under CI)."""

    now = 0.0

    @classmethod
    def perf_counter(cls) -> float:
        return cls.now

    @classmethod
    def sleep(cls, seconds: float) -> None:
        cls.now += seconds


@pytest.fixture(autouse=True)
def _fake_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(keras_reads, "time", _Clock)
    yield


class _Optimizer:
    def __init__(self, schedule: bool, cost: float) -> None:
        self._cost = cost
        self._learning_rate: Any = (lambda step: 0.1) if schedule else 0.1  # Keras 3 keeps either here
        self.reads = 0

    @property
    def learning_rate(self) -> float:
        self.reads += 1
        _Clock.sleep(self._cost)  # a schedule's eager ops
        return 0.1


def test_a_constant_rate_is_read_every_epoch() -> None:
    opt, reader = _Optimizer(schedule=False, cost=0.0), RateReader()
    assert [reader.read(opt, 0.14) for _ in range(20)] == [0.1] * 20


def test_a_schedule_is_read_at_the_first_epoch_then_within_its_share_of_training_time() -> None:
    opt, reader = _Optimizer(schedule=True, cost=0.001), RateReader()
    got = [reader.read(opt, 0.14) for _ in range(50)]
    assert got[0] == 0.1  # the fit's first epoch: always
    # a 1 ms read earns its turn after ~24 epochs of 0.14 s (0.03% of training time)
    assert 1 <= opt.reads <= 3 and got.count(None) == 50 - opt.reads
    long_epochs = RateReader()
    opt.reads = 0
    [long_epochs.read(opt, 10.0) for _ in range(10)]  # 3 ms of credit an epoch
    assert opt.reads == 10


class _Counter:
    def __init__(self) -> None:
        self.value = 0
        self.reads = 0

    @property
    def iterations(self) -> int:
        self.reads += 1
        _Clock.sleep(0.001)
        return self.value


def test_the_step_counter_is_read_at_the_first_epoch_then_counted_and_corrected() -> None:
    from epochwatch.integrations.keras_reads import StepCounter

    opt, counter = _Counter(), StepCounter()
    opt.value = 1000  # a resumed run: the counter does not start at 0
    assert counter.read(opt, 10, 0.14) == 1000 and opt.reads == 1
    got = []
    for _ in range(20):
        opt.value += 10
        got.append(counter.read(opt, 10, 0.14))
    assert got == [1000 + 10 * (i + 1) for i in range(20)]  # counted: exact while steps are steps
    assert opt.reads <= 2  # a 1 ms read earns its turn after ~24 epochs of 0.14 s
    opt.value += 7  # an optimizer that skipped 3 of 10 steps (inf gradients under loss scaling)
    for _ in range(60):
        last = counter.read(opt, 10, 10.0)  # long epochs: read each time again
    assert last == opt.value and counter.read(opt, 0, 10.0) == opt.value


def test_an_accumulating_optimizer_is_read_every_epoch() -> None:
    """`Adam(gradient_accumulation_steps=4)`: 64 batches an epoch are 16 iterations (Keras
    counts one per 4 batches, floored); batches added to the last read said 16, 80, 144."""
    from epochwatch.integrations.keras_reads import StepCounter

    opt, counter = _Counter(), StepCounter()
    opt.gradient_accumulation_steps = 4  # type: ignore[attr-defined]
    got = []
    for _ in range(10):
        opt.value += 16
        got.append(counter.read(opt, 64, 0.14))
    assert got == [16 * (i + 1) for i in range(10)] and opt.reads == 10
