"""Moved to epochwatch.analysis.run (a Run is the analysis' view of a trace, built on
analysis.series). This alias is for the three callers being reworked on other branches
(analysis/lineage.py, analysis/detectors/restore.py, checkpoints/resume.py): delete it
when they import from epochwatch.analysis.run.
"""

from epochwatch.analysis.run import RECENT_SAMPLES, Record, Run, load_run

__all__ = ["RECENT_SAMPLES", "Record", "Run", "load_run"]
