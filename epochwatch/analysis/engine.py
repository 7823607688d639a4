"""Turning per-epoch verdicts into findings: persistence, once per (kind, target), replay.

The same Engine runs online (one `step` per new epoch) and offline (`analyze` replays a
finished run epoch by epoch), so a report lists what the online analyzer reported, from
the epoch it would have reported it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from epochwatch.analysis.detectors import Detector, all_detectors
from epochwatch.analysis.findings import Finding, sort_findings
from epochwatch.analysis.run import Run
from epochwatch.analysis.view import RunAtEpoch

if TYPE_CHECKING:
    from epochwatch.analysis.restore.parents import ParentCache

# Offline replay evaluates every epoch of runs up to this long; longer runs every epoch of
# the first REPLAY_DENSE, then evenly spaced epochs (REPLAY_SPARSE more), and the last.
REPLAY_DENSE = 2000
REPLAY_SPARSE = 2000

Key = tuple[str, str | None]


class Engine:
    def __init__(self, detectors: Sequence[Detector] | None = None) -> None:
        self.detectors = tuple(all_detectors() if detectors is None else detectors)
        self._streaks: dict[Key, int] = {}
        self.emitted: dict[Key, Finding] = {}

    def done(self, kind: str, target: str | None) -> bool:
        return (kind, target) in self.emitted

    def step(self, view: RunAtEpoch, *, replay_only: bool | None = None) -> list[Finding]:
        """Evaluate the detectors on `view`; return the findings reported for the first time.

        replay_only: True runs only replay detectors, False only whole-run ones, None all.
        """
        view.done = self.done
        new: list[Finding] = []
        held: set[Key] = set()
        for detector in self.detectors:
            if replay_only is not None and detector.replay != replay_only:
                continue
            for finding in detector.detect(view):
                key = finding.key
                if key in self.emitted or key in held:
                    continue
                held.add(key)
                streak = self._streaks.get(key, 0) + 1
                self._streaks[key] = streak
                if streak >= detector.persistence:
                    self.emitted[key] = finding
                    new.append(finding)
        for key in [k for k in self._streaks if k not in held]:
            del self._streaks[key]
        return new


def replay_points(n: int) -> Iterator[int]:
    """The `end`s at which a finished run of n epochs is evaluated (see REPLAY_*)."""
    if n <= REPLAY_DENSE:
        yield from range(1, n + 1)
        return
    yield from range(1, REPLAY_DENSE + 1)
    stride = max(1, -(-(n - REPLAY_DENSE) // REPLAY_SPARSE))
    end = REPLAY_DENSE
    while end + stride < n:
        end += stride
        yield end
    yield n


def analyze(
    run: Run, detectors: Sequence[Detector] | None = None, *, parents: ParentCache | None = None
) -> list[Finding]:
    """Every finding for a finished (or interrupted) run, most severe first.

    Replays the run epoch by epoch through the same Engine the online analyzer uses,
    then runs the whole-run detectors once on the complete run. `parents`: the caller's
    cache of parent runs (see RunAtEpoch), for callers that analyze many runs.
    """
    engine = Engine(detectors)
    found: list[Finding] = []
    for end in replay_points(run.series.count):
        found.extend(engine.step(RunAtEpoch(run, end, parents=parents), replay_only=True))
    found.extend(engine.step(RunAtEpoch(run, parents=parents), replay_only=False))
    return sort_findings(found)
