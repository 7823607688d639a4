"""The values `hook.log` gets during one epoch, and their means at the epoch's end.

Python numbers are summed as they come. Anything else (a framework tensor) is kept as it
is: converting it would copy it from its device and wait for the device at every step.
At the epoch's end (and every FOLD_AT values of one metric, to bound memory) a metric's
kept values go to `reduce` (the hook sets integrations/tensors.reduce_sum: one sum where
the values live, one transfer), or else each is converted with `convert`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FOLD_AT = 1024
Reduce = Callable[[list[Any]], "tuple[float, int] | None"]
Convert = Callable[[Any], "float | None"]


def to_float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class LoggedMetrics:
    __slots__ = ("convert", "counts", "pending", "reduce", "sums")

    def __init__(self, reduce: Reduce | None = None, convert: Convert | None = None) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.pending: dict[str, list[Any]] = {}
        self.reduce = reduce
        self.convert = convert or to_float

    def add(self, metrics: dict[str, Any]) -> None:
        """The per-step path: a dict update for a number, a list append for anything else."""
        sums, counts, pending = self.sums, self.counts, self.pending
        for key, value in metrics.items():
            if type(value) is float or type(value) is int:
                sums[key] = sums.get(key, 0.0) + value
                counts[key] = counts.get(key, 0) + 1
            else:
                kept = pending.get(key)
                if kept is None:
                    kept = pending[key] = []
                kept.append(value)
                if len(kept) >= FOLD_AT:
                    self.fold(key)

    def fold(self, key: str) -> None:
        values = self.pending.pop(key, [])
        reduced = self.reduce(values) if self.reduce is not None else None
        if reduced is not None:
            total, n = reduced
            self.sums[key] = self.sums.get(key, 0.0) + total
            self.counts[key] = self.counts.get(key, 0) + n
            return
        for value in values:
            number = self.convert(value)
            if number is not None:
                self.sums[key] = self.sums.get(key, 0.0) + number
                self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        """Each metric's mean over the epoch (what was kept is folded first)."""
        for key in list(self.pending):
            self.fold(key)
        return {k: self.sums[k] / self.counts[k] for k in self.counts}

    @property
    def steps(self) -> int:
        return max(self.counts.values(), default=0)
