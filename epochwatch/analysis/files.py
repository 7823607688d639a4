"""Analyzing trace files: what `report` and `check` share.

Each file is read, replayed through the detectors and reduced to its findings; a file
that cannot be used becomes a one-line problem and the others go on. Findings that the
trace itself carries (written online by the hook or the daemon) are kept when the
offline analysis did not find the same (kind, target), e.g. from detectors that need
the live process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from epochwatch.analysis.engine import analyze
from epochwatch.analysis.findings import Finding, sort_findings
from epochwatch.analysis.restore.lineage import Lineage
from epochwatch.analysis.restore.parents import ParentCache
from epochwatch.analysis.run import Run, load_run
from epochwatch.trace.reader import ReadStats, TraceError, find_traces

# Whole epoch records kept per run while reading (the series keep every epoch anyway).
EPOCH_RECORDS = 2000


@dataclass
class Analyzed:
    path: Path
    run: Run
    findings: list[Finding]
    recorded: list[Finding] = field(default_factory=list)  # from the trace, not found again


def analyze_file(
    path: str | os.PathLike[str],
    on_read: Callable[[int], None] | None = None,
    lineage: Lineage | None = None,
    parents: ParentCache | None = None,
) -> Analyzed:
    """One trace file's run and findings; raises TraceError when the file is unusable.

    `on_read` is called with the size of each chunk read (report's progress bar).
    `lineage` (from scan_lineage over all the files) links this run's restores to the
    runs that saved those bytes before the detectors run, so restore findings work on
    traces gathered from many hosts, where the hook could not find the parent. `parents`
    keeps the parent runs read for that across the files of one report.
    """
    run = load_run(path, max_epoch_records=EPOCH_RECORDS, stats=ReadStats(on_read=on_read))
    if lineage is not None:
        lineage.annotate(run)
    findings, recorded = run_findings(run, parents)
    return Analyzed(Path(path), run, findings, recorded)


def run_findings(run: Run, parents: ParentCache | None = None) -> tuple[list[Finding], list[Finding]]:
    """A run's findings: (the replay's, each as last reported; those its trace carries,
    from its ledger, that the replay did not find again)."""
    findings = analyze(run, parents=parents, episodes=True)
    keys = {f.key for f in findings}
    return findings, sort_findings([f for f in run.ledger.findings() if f.key not in keys])


def analyze_paths(
    paths: Iterable[str | os.PathLike[str]], lineage: Lineage | None = None
) -> Iterator[Analyzed | str]:
    """Each usable trace under `paths` as Analyzed, each problem as a one-line string."""
    files, problems = find_traces(paths)
    yield from problems
    parents = ParentCache()
    for f in files:
        try:
            yield analyze_file(f, lineage=lineage, parents=parents)
        except TraceError as exc:
            yield str(exc)
        except (OSError, ValueError, RecursionError) as exc:
            yield f"{f}: cannot analyze ({type(exc).__name__}: {exc})".splitlines()[0]
