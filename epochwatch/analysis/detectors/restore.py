"""Restore and resume findings, in the analysis registry (one finding per kind and restored path).

The analysis itself is the package epochwatch.analysis.restore: each restore of the run
against the run that saved those bytes, found from the restore's `parent` field through
the view's ParentCache (owned by whoever runs the analysis). docs/findings.md lists the
kinds under "Restore and resume".
"""

from __future__ import annotations

from epochwatch.analysis import restore
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.view import RunAtEpoch


def detect(view: RunAtEpoch) -> list[Finding]:
    return restore.detect(view.run, parents=view.parents)


# replay=False: judged on the run as it is (the restore, and the epochs after it), once
# offline; the online engine runs it after every epoch, which is what a resumed run needs.
DETECTOR = Detector(name="restore", detect=detect, persistence=1, replay=False)
