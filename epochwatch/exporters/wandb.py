"""The run's series, findings and report into the active Weights & Biases run.

Installed when the script imports wandb (never imported here before that); it writes only
while `wandb.run` is set. Each epoch logs the run's series (exporters/series.py) as
`epochwatch/<series>`, charted against `epochwatch/epoch` (the epoch as Keras prints it);
when a fit ends, the HTML report is saved as the run's file `epochwatch-report.html`
(made then, on the training thread: scripts often call `wandb.finish()` right after
`fit`, and a file saved later is lost). `run.alert` is W&B's own notification (mail, Slack, per the
user's settings), again when an update is news (graver, or naming its cause); the summary
gets `epochwatch/<kind>` = severity as last reported and `epochwatch/findings` = the count,
so the runs table can filter on them.
EPOCHWATCH_WANDB=0 turns it off; a failure turns it off for the process (the Guard).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch import envvars
from epochwatch.analysis.findings import RANK, WARNING
from epochwatch.analysis.ledger import Ledger
from epochwatch.exporters.report_file import NAME, report_html
from epochwatch.exporters.series import PREFIX, epoch_series
from epochwatch.exporters.tensorboard import finding_markdown

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "wandb export"


class WandbExport:
    def __init__(self, trace: Callable[[], str | None]) -> None:
        self._lock = threading.Lock()
        self._ledgers: dict[str, Ledger] = {}  # per W&B run
        self._charted: set[str] = set()  # W&B runs whose epochwatch/* charts have their x-axis
        self._trace = trace

    def on_record(self, rec: dict[str, Any]) -> None:
        run = getattr(sys.modules.get("wandb"), "run", None)
        if run is None:
            return
        kind = rec.get("type")
        if kind == "epoch" and isinstance(rec.get("epoch"), int):
            values = epoch_series(rec)
            run_id = str(getattr(run, "id", ""))
            if run_id not in self._charted:
                self._charted.add(run_id)
                run.define_metric(f"{PREFIX}epoch")
                run.define_metric(f"{PREFIX}*", step_metric=f"{PREFIX}epoch")
            run.log({f"{PREFIX}epoch": rec["epoch"] + 1, **{PREFIX + k: v for k, v in values.items()}})
        elif kind == "fit_end":
            self.report(run)

    def report(self, run: Any) -> None:
        """The HTML report as a file of the run (uploaded now, or kept for `wandb sync`)."""
        page = report_html(self._trace())
        if page is None:
            return
        path = os.path.join(str(run.dir), NAME)
        with open(path, "w", encoding="utf-8") as out:
            out.write(page)
        run.save(path, base_path=str(run.dir), policy="now")

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
            text = finding_markdown(dict(rec))  # evidence with units, as the reports show it
            run.alert(title=f"epochwatch: {finding.kind}", text=text[:1000], level=level)


def install(recorder: Recorder) -> None:
    if envvars.switched_on(envvars.EPOCHWATCH_WANDB, recorder.environ):
        export = WandbExport(lambda: recorder.trace_path)
        recorder.add_listener(export.on_record, PART)
        recorder.add_finding_listener(export.on_finding, PART)
