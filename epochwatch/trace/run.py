"""A run as the analysis sees it: one trace file folded into plain lists of records.

Epoch, save, restore and finding records are kept (a run has thousands at most);
1 Hz samples are not (a long run has millions): only their count and the most recent
ones stay, so loading a run costs memory in epochs, not in hours of sampling.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epochwatch.trace import schema
from epochwatch.trace.reader import ReadStats, iter_records

Record = dict[str, Any]
RECENT_SAMPLES = 600


@dataclass
class Run:
    run_id: str
    path: Path | None = None
    start: Record | None = None
    fits: list[Record] = field(default_factory=list)
    epochs: list[Record] = field(default_factory=list)
    saves: list[Record] = field(default_factory=list)
    restores: list[Record] = field(default_factory=list)
    findings: list[Record] = field(default_factory=list)
    notices: list[Record] = field(default_factory=list)
    end: Record | None = None
    sample_count: int = 0
    recent_samples: deque[Record] = field(default_factory=lambda: deque(maxlen=RECENT_SAMPLES))
    stats: ReadStats = field(default_factory=ReadStats)

    @property
    def ended(self) -> str:
        """How the run ended, as the trace says; 'abruptly' when it never said."""
        if self.end is None:
            return "abruptly"
        return str(self.end.get("ended", "unknown"))

    def add(self, rec: Record) -> None:
        kind = rec.get("type")
        if kind == schema.EPOCH:
            self.epochs.append(rec)
        elif kind == schema.SAMPLE:
            self.sample_count += 1
            self.recent_samples.append(rec)
        elif kind == schema.RUN_START:
            if self.start is None:
                self.start = rec
        elif kind == schema.FIT_START:
            self.fits.append(rec)
        elif kind == schema.SAVE:
            self.saves.append(rec)
        elif kind == schema.RESTORE:
            self.restores.append(rec)
        elif kind == schema.FINDING:
            self.findings.append(rec)
        elif kind == schema.NOTICE:
            self.notices.append(rec)
        elif kind == schema.RUN_END:
            self.end = rec


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read one trace file into a Run; raises TraceError for an unusable file."""
    stats = ReadStats()
    run: Run | None = None
    for rec in iter_records(path, stats):
        if run is None:
            run = Run(run_id=str(rec.get("run_id", Path(path).stem)), path=Path(path), stats=stats)
        run.add(rec)
    assert run is not None  # iter_records raises on a file without records
    return run
