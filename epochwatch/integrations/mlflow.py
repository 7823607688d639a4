"""Findings into the active MLflow run: a tag per finding kind and a findings artifact.

Installed when the script imports mlflow (never imported here before that). The run is
the one active on the training thread at the fit's start (or at the finding): a daemon's
findings arrive on the sink's thread, where MLflow's thread-local active run is unset.
Tags `epochwatch.<kind>` = severity; artifact `epochwatch/findings.json` = every finding so
far (rewritten at each), as in the report's JSON. EPOCHWATCH_MLFLOW=0 turns it off; a
failure turns it off for the process (the Guard).
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

from epochwatch.analysis.findings import from_record
from epochwatch.integrations.tensorboard import enabled

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "mlflow export"
ARTIFACT = "epochwatch/findings.json"


class MlflowExport:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run_id: str | None = None
        self._findings: dict[str, list[dict[str, Any]]] = {}

    def _active(self) -> str | None:
        mlflow = sys.modules.get("mlflow")
        run = mlflow.active_run() if mlflow is not None else None
        if run is not None:
            self._run_id = str(run.info.run_id)
        return self._run_id

    def on_record(self, rec: dict[str, Any]) -> None:
        if rec.get("type") == "fit_start":
            self._active()

    def on_finding(self, rec: dict[str, Any]) -> None:
        mlflow = sys.modules.get("mlflow")
        run_id = self._active()
        if mlflow is None or run_id is None:
            return
        finding = from_record(rec).to_dict()
        with self._lock:
            found = self._findings.setdefault(run_id, [])
            if any((f["kind"], f["target"]) == (finding["kind"], finding["target"]) for f in found):
                return
            found.append(finding)
            doc = {"findings": list(found)}
        client = mlflow.MlflowClient()
        client.set_tag(run_id, f"epochwatch.{finding['kind']}", finding["severity"])
        client.log_dict(run_id, doc, ARTIFACT)


def install(recorder: Recorder) -> None:
    if not enabled(recorder.environ, "EPOCHWATCH_MLFLOW"):
        return
    export = MlflowExport()
    recorder.add_listener(export.on_record, PART)
    recorder.add_finding_listener(export.on_finding, PART)
