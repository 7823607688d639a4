"""One attempt of a distributed job: its workers' views, their epochs aligned by position.

What the job detectors read (detectors/straggler.py); analysis/jobs.py builds them from the
worker views of the traces read and puts their findings in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from epochwatch.analysis.findings import Finding
from epochwatch.analysis.series import FIRST


@dataclass
class Job:
    """One attempt of one job: its workers (views) and their epochs aligned by position."""

    job_id: str
    source: str | None
    workers: list[dict[str, Any]]
    world_size: int | None
    findings: list[Finding] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return min((w["epochs"] for w in self.workers), default=0)

    def column(self, worker: int, name: str) -> list[float]:
        values = self.workers[worker][name][: self.epochs]
        return [math.nan if v is None else float(v) for v in values]

    def warm(self, position: int) -> bool:
        """Warm-up on any worker (first epoch of a fit or loop: compile, first traces)."""
        return any(w["warm"][position] == FIRST for w in self.workers if position < len(w["warm"]))
