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

from epochwatch import envvars
from epochwatch.analysis.findings import RANK, WARNING
from epochwatch.analysis.ledger import Ledger

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "wandb export"


class WandbExport:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ledgers: dict[str, Ledger] = {}  # per W&B run

    def on_finding(self, rec: dict[str, Any]) -> None:
        wandb = sys.modules.get("wandb")
        run = getattr(wandb, "run", None)
        if wandb is None or run is None:
            return
        run_id = str(getattr(run, "id", ""))
        with self._lock:
            ledger = self._ledgers.setdefault(run_id, Ledger())
        taken = ledger.take(rec)
        if taken is None:
            return
        finding, news = taken
        run.summary[f"epochwatch/{finding.kind}"] = finding.severity
        run.summary["epochwatch/findings"] = len(ledger)
        if news and RANK[finding.severity] >= RANK[WARNING]:
            levels = getattr(wandb, "AlertLevel", None)
            level = getattr(levels, "ERROR" if finding.severity == "critical" else "WARN", None)
            text = f"{finding.title}\n{finding.hint}".strip()
            run.alert(title=f"epochwatch: {finding.kind}", text=text[:1000], level=level)


def install(recorder: Recorder) -> None:
    if envvars.switched_on(envvars.EPOCHWATCH_WANDB, recorder.environ):
        recorder.add_finding_listener(WandbExport().on_finding, PART)
