"""The one protocol every detector follows.

A detector is a pure function of a run as it stood after some epoch (a RunAtEpoch) that
returns the findings that hold at that epoch. The engine (analysis/engine.py) calls it
after every epoch, online and in the offline replay, and turns "holds for `persistence`
consecutive epochs" into one finding per (kind, target). So a detector never keeps
state, never decides whether it already spoke, and stays cheap: it reads trailing
windows, not the whole run. `view.done(kind, target)` says a finding was already
reported, so a detector may skip the work for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from epochwatch.analysis.findings import Finding
    from epochwatch.analysis.view import RunAtEpoch


@dataclass(frozen=True)
class Detector:
    """name: for messages. detect: RunAtEpoch -> findings that hold now.

    persistence: consecutive epochs a (kind, target) must hold before it is reported
    (1 for events, e.g. a restore that went wrong; 3 for trends).
    replay: True (default) evaluates after every epoch, also offline; False evaluates a
    finished run once, at its end (for whole-run checks that are not about "when").
    current: for findings that are episodes (growth, slowdowns): the measure's value now
    (not a trailing envelope's), so the engine can update a finding while the problem
    grows and say when it ended; such a detector's findings carry `evidence["current"]`
    and `evidence["base"]` (the level before the problem), and its `detect` is called
    also after its finding was reported (`view.done` is then always False for it).
    verdict: for such a detector, its last word at the run's end on each reported episode
    of the run's epochs, ended or not, on all the evidence: the finding as it should now
    stand (said as an update), or None to leave it as last reported.
    """

    name: str
    detect: Callable[[RunAtEpoch], Iterable[Finding]]
    persistence: int = 1
    replay: bool = True
    current: Callable[[RunAtEpoch, Finding], float] | None = None
    # Also judge the run's sub-epoch intervals (view.unit == "interval"): series that an
    # interval record carries (step times, RSS, GPU memory, directories).
    intervals: bool = False
    # Also judge the run's fits as a sequence (view.unit == "fit": one point per fit_end,
    # what each fit of a loop of fits leaves behind).
    fits: bool = False
    verdict: Callable[[RunAtEpoch, Finding], Finding | None] | None = None


def each_key(
    view: RunAtEpoch,
    kind: str,
    column: str,
    target: Callable[[str], str],
    judge: Callable[[RunAtEpoch, str], Finding | None],
) -> list[Finding]:
    """`judge(view, key)` for every key of a keyed series (a device, a directory) whose
    finding, (kind, target(key)), was not reported yet."""
    found = [judge(view, key) for key in view.series.keys(column) if not view.done(kind, target(key))]
    return [f for f in found if f is not None]
