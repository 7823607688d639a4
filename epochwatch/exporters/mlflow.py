"""The run's series, findings and report into the active MLflow run.

Installed when the script imports mlflow (never imported here before that). The run is
the one active on the training thread at the fit's start (or at the finding): a daemon's
findings arrive on the sink's thread, where MLflow's thread-local active run is unset.
Metrics `epochwatch/<series>` at each epoch (step = the epoch as the trace counts it:
exporters/series.py), beside the run's own and MLflow's system metrics; tags
`epochwatch.<kind>` = severity; artifact `epochwatch/findings.json` = every finding so far,
each as last reported (rewritten at each finding and update), as in the report's JSON; and
`epochwatch/epochwatch-report.html`, the HTML report, when a fit ends (exporters/report_file.py).
The calls go to the tracking server
from a background thread (a remote server must never hold up an epoch); the run's end waits
for them at most FLUSH_SECONDS. EPOCHWATCH_MLFLOW=0 turns it off; a failure turns it off
for the process (the Guard).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch import envvars
from epochwatch.analysis.ledger import Ledger
from epochwatch.exporters.report_file import NAME, report_html
from epochwatch.exporters.series import PREFIX, epoch_series

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "mlflow export"
ARTIFACT = "epochwatch/findings.json"
FLUSH_SECONDS = 15.0  # the report's page is made on that thread too


class MlflowExport:
    def __init__(
        self, guard_run: Callable[[str, Callable[[], None], None], None], trace: Callable[[], str | None]
    ) -> None:
        self._trace = trace  # where the run's trace is (the recorder knows)
        self._reported = False  # this run's report is attached (at its fit's end)
        self._run_id: str | None = None
        self._ledgers: dict[str, Ledger] = {}  # per MLflow run
        self._lock = threading.Lock()
        self._guard_run = guard_run
        self._queue: queue.Queue[Callable[[], None]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def _submit(self, call: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="epochwatch-mlflow", daemon=True)
                self._thread.start()
        self._queue.put(call)

    def _work(self) -> None:
        while True:
            call = self._queue.get()
            self._guard_run(PART, call, None)
            self._queue.task_done()

    def flush(self, *_args: Any) -> None:
        """Wait (at most FLUSH_SECONDS) until what was queued reached the tracking server."""
        deadline = time.monotonic() + FLUSH_SECONDS
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def _active(self) -> str | None:
        mlflow = sys.modules.get("mlflow")
        run = mlflow.active_run() if mlflow is not None else None
        if run is not None:
            self._run_id = str(run.info.run_id)
        return self._run_id

    def on_record(self, rec: dict[str, Any]) -> None:
        kind = rec.get("type")
        if kind == "run_start":
            self._reported = False
        elif kind == "fit_start":
            self._active()
        elif kind == "epoch" and isinstance(rec.get("epoch"), int):
            self._metrics(rec["epoch"], epoch_series(rec), int(float(rec.get("t") or time.time()) * 1000))
        elif kind == "fit_end":
            self.report()

    def _metrics(self, step: int, values: dict[str, float], millis: int) -> None:
        mlflow = sys.modules.get("mlflow")
        run_id = self._active()
        if mlflow is None or run_id is None or not values:
            return

        def send() -> None:
            from mlflow.entities import Metric

            metrics = [Metric(PREFIX + name, v, millis, step) for name, v in values.items()]
            mlflow.MlflowClient().log_batch(run_id, metrics=metrics)

        self._submit(send)

    def report(self) -> None:
        """The HTML report as an artifact of the run, while it is open (a fit's end)."""
        mlflow = sys.modules.get("mlflow")
        run_id, trace = self._active(), self._trace()
        if mlflow is None or run_id is None or trace is None:
            return
        self._reported = True

        def send() -> None:  # made on the exporter's thread: the fit returns at once
            page = report_html(trace)
            if page is not None:
                mlflow.MlflowClient().log_text(run_id, page, f"epochwatch/{NAME}")

        self._submit(send)

    def at_end(self, *_args: Any) -> None:
        """The run ended: a loop's run gets its report now (a fit's got it at its end); then
        wait for what is queued."""
        if not self._reported:
            self.report()
        self.flush()

    def on_finding(self, rec: dict[str, Any]) -> None:
        mlflow = sys.modules.get("mlflow")
        run_id = self._active()
        if mlflow is None or run_id is None:
            return
        with self._lock:
            ledger = self._ledgers.setdefault(run_id, Ledger())
        taken = ledger.take(rec)
        if taken is None:
            return  # a repeat, or an older state arriving late
        finding = taken[0]
        doc = {"findings": [f.to_dict() for f in ledger.findings()]}

        def send() -> None:
            client = mlflow.MlflowClient()
            client.set_tag(run_id, f"epochwatch.{finding.kind}", finding.severity)
            client.log_dict(run_id, doc, ARTIFACT)

        self._submit(send)


def install(recorder: Recorder) -> None:
    if not envvars.switched_on(envvars.EPOCHWATCH_MLFLOW, recorder.environ):
        return
    export = MlflowExport(recorder.guard.run, lambda: recorder.trace_path)
    recorder.add_listener(export.on_record, PART)
    recorder.add_finding_listener(export.on_finding, PART)
    recorder.after_finish(export.at_end)
