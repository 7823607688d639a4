"""Findings into the active Weights & Biases run: an alert for warnings and up, the summary for all.

Installed when the script imports wandb (never imported here before that); it writes only
while `wandb.run` is set. `run.alert` is W&B's own notification (mail, Slack, per the
user's settings), again when an update is news (graver, or naming its cause); the summary
gets `epochwatch/<kind>` = severity as last reported and `epochwatch/findings` = the count,
so the runs table can filter on them.
EPOCHWATCH_WANDB=0 turns it off; a failure turns it off for the process (the Guard).
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from epochwatch import environment
from epochwatch.analysis.findings import RANK, WARNING, LatestFindings

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "wandb export"


class WandbExport:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str, str]] = set()
        self._latest: dict[str, LatestFindings] = {}  # per W&B run

    def on_finding(self, rec: dict[str, Any]) -> None:
        wandb = sys.modules.get("wandb")
        run = getattr(wandb, "run", None)
        if wandb is None or run is None:
            return
        kind, severity = str(rec.get("kind")), str(rec.get("severity"))
        run_id = str(getattr(run, "id", ""))
        with self._lock:
            latest = self._latest.setdefault(run_id, LatestFindings())
        taken = latest.take(rec)
        if taken is None:
            return
        news = taken[1]
        with self._lock:
            self._seen.add((run_id, kind, str(rec.get("target"))))
            count = sum(1 for k in self._seen if k[0] == run_id)
        run.summary[f"epochwatch/{kind}"] = severity
        run.summary["epochwatch/findings"] = count
        if news and RANK.get(severity, 0) >= RANK[WARNING]:
            levels = getattr(wandb, "AlertLevel", None)
            level = getattr(levels, "ERROR" if severity == "critical" else "WARN", None)
            text = f"{rec.get('title')}\n{rec.get('hint') or ''}".strip()
            run.alert(title=f"epochwatch: {kind}", text=text[:1000], level=level)


def install(recorder: Recorder) -> None:
    if environment.switched_on(environment.EPOCHWATCH_WANDB, recorder.environ):
        recorder.add_finding_listener(WandbExport().on_finding, PART)
