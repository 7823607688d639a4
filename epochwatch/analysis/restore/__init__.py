"""Restore and resume analysis: what changed between a run and the run it resumed from.

For each `restore` record of a run, the run that saved those bytes (the parent) is compared
with what the child did right after the restore. One idea per module:

- lineage.py: who resumed from whom, restores matched to saves by hash (runs in memory).
- scan.py: the same from trace files without loading them whole (`report`, `check`), and
  the bounded search for a parent at restore time (the hook).
- parents.py: a restore's parent from its `parent` field, through a ParentCache that the
  caller owns (never module state).
- resume.py: a Resume, one restore with the records around it on both sides.
- restored.py, settings.py, continuation.py, machine.py: the checks, pure functions of a
  Resume returning Findings (docs/findings.md, "Restore and resume").
- checks.py: the checks in order; `detect` for one run, `compare_findings` for two.

detectors/restore.py plugs `detect` into the analysis registry; checkpoints/resume.py runs
it in the training process while the resumed run goes.
"""

from __future__ import annotations

from epochwatch.analysis.restore.checks import KINDS, compare_findings, detect, record_fields
from epochwatch.analysis.restore.parents import ParentCache
from epochwatch.analysis.restore.resume import WINDOW

__all__ = ["KINDS", "WINDOW", "ParentCache", "compare_findings", "detect", "record_fields"]
