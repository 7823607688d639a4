"""The few numbers of a run's last epoch that the metrics show, kept instead of the record.

Why a copy and not the record: an epoch record carries Keras' metrics, retrace causes and
directory lists (kilobytes, sent by the hook), and the daemon holds up to a thousand runs;
the metrics need four floats of it. The record is the hook's, so every value is checked
here (a number, finite, not negative) and dropped otherwise, never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from epochwatch.analysis.series import finite_number


@dataclass(frozen=True)
class LastEpoch:
    """Step time, steps, input wait and all-reduce time of one epoch (None: not measured)."""

    steps: float | None = None
    step_seconds: float | None = None  # median time between consecutive step starts
    input_wait_seconds: float | None = None
    collective_seconds: float | None = None  # time inside the steps that hold an all-reduce


def _seconds(value: Any) -> float | None:
    seconds = finite_number(value)
    return seconds if seconds is not None and seconds >= 0 else None


def _field(block: Any, key: str) -> float | None:
    return _seconds(block.get(key)) if isinstance(block, dict) else None


def last_epoch(rec: dict[str, Any]) -> LastEpoch:
    """The LastEpoch of an epoch record (trace-format.md, `epoch`); absent fields stay None."""
    return LastEpoch(
        steps=_seconds(rec.get("steps")),
        step_seconds=_field(rec.get("step_seconds"), "median"),
        input_wait_seconds=_seconds(rec.get("input_wait_seconds")),
        collective_seconds=_field(rec.get("collective"), "seconds"),
    )
