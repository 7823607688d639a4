"""The optimizer's numbers at an epoch's end (learning rate, step counter), read at a cost
near the floor.

A TF variable read is an eager op: 30-50 us in a quiet process, 120-270 us as the first op
after an epoch's training steps (cold caches), and a learning-rate schedule is several
ops (0.75-0.9 ms). What the restore checks need is read every time (a constant rate; the
step counter at a fit's first epoch); the rest is paced within a share of the training
time, the way the input wait's model read is.
"""

from __future__ import annotations

import math
import time
from typing import Any


def number(get: Any) -> float | None:
    """A scalar variable, tensor or number as a float. `float()` first: on a TF variable it
    is one read (about a third of `.numpy()`'s cost, which builds an array); a Keras 3
    variable is read through its backend value (`.value`: 45 instead of 70 us)."""
    try:
        value = get()
        inner = getattr(value, "value", None)  # tf.Variable.value is a method: left alone
        if inner is not None and not callable(inner):
            value = inner
    except Exception:
        return None
    try:
        return float(value)
    except Exception:
        pass
    try:
        return float(value.numpy())
    except Exception:
        return None


class Credit:
    """A read allowed while its cost stays within `share` of the training time (these reads
    and input_wait.py's model read): credit, from `credit`, grows with training time, a read
    spends its cost, and the cheapest read so far is the price of the next. A first read
    spends nothing (it pays one-time set-up) and is priced at most `first_cost`."""

    CAP = 0.01  # seconds of credit at most

    def __init__(self, share: float, credit: float = 0.0, first_cost: float = math.inf) -> None:
        self.share = share
        self.first_cost = first_cost
        self._credit = credit
        self.cost = 0.0  # the price of the next read (0.0: none read yet)

    def due(self, train_seconds: float) -> bool:
        self._credit = min(self._credit + train_seconds * self.share, self.CAP)
        return self._credit >= self.cost

    def spent(self, cost: float, first: bool = False) -> None:
        if not first:
            self._credit -= cost
        self.cost = min(cost, self.first_cost) if first else min(cost, self.cost)


class StepCounter:
    """The optimizer's step counter at each epoch's end, without a variable read each epoch.

    Read at a fit's first epoch (what the restore checks use: where a resumed run starts)
    and then within READ_SHARE of the training time; in between it is the last read plus
    the steps the callback counted (one optimizer step per train step), which the next read
    confirms or corrects (a loss-scaling optimizer that skips a step with inf gradients).
    An optimizer that accumulates gradients (Keras 3's `gradient_accumulation_steps=k`)
    counts one iteration per k batches, floored: it is read every epoch (a read is 0.1-0.3
    ms an epoch), since the batches alone do not say where in its cycle it stands.
    """

    READ_SHARE = 0.0003

    def __init__(self) -> None:
        self._credit = Credit(self.READ_SHARE)
        self._last: int | None = None
        self._every_epoch = False  # decided at the fit's first read (the optimizer's setting)

    def read(self, optimizer: Any, steps: int, train_seconds: float) -> int | None:
        first = self._last is None
        if first:
            accumulation = getattr(optimizer, "gradient_accumulation_steps", None)
            self._every_epoch = isinstance(accumulation, int) and accumulation > 1
        if first or self._every_epoch or self._credit.due(train_seconds):
            t0 = time.perf_counter()
            value = number(lambda: optimizer.iterations)
            self._credit.spent(time.perf_counter() - t0, first)
            if value is not None:
                self._last = int(value)
                return self._last
        if self._last is None:
            return None
        self._last += steps
        return self._last


class RateReader:
    """The learning rate at each epoch's end, at a cost that stays near a variable read.

    A constant rate is a variable (which ReduceLROnPlateau or LearningRateScheduler assign):
    read every epoch, since the restore checks compare the parent's last rate with the
    child's first. A schedule (`optimizer._learning_rate` is callable, in Keras 3 and
    tf_keras alike) is recomputed by Keras from the step count with several eager ops,
    0.3-0.9 ms: it is read at a fit's first epoch and then only while its reads stay within
    READ_SHARE of the training time (the restore checks compare schedules by config, and
    `compare` needs a rate now and then, not every epoch's).
    """

    READ_SHARE = 0.0003

    def __init__(self) -> None:
        self._credit = Credit(self.READ_SHARE)
        self._epochs = 0

    def read(self, optimizer: Any, train_seconds: float) -> float | None:
        first = self._epochs == 0
        self._epochs += 1
        scheduled = callable(getattr(optimizer, "_learning_rate", None))
        if scheduled and not first and not self._credit.due(train_seconds):
            return None
        t0 = time.perf_counter()
        value = number(lambda: optimizer.learning_rate)
        if scheduled:
            self._credit.spent(time.perf_counter() - t0, first)
        return value
