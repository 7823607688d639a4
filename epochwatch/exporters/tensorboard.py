"""Findings into the fit's TensorBoard log directory, where users already look.

When a fit has `keras.callbacks.TensorBoard(log_dir)` (the fit_start record lists its
directory with the role "tensorboard"), each finding is written there as a text summary
(`epochwatch/<kind>`, at the epoch it was found; again at an update that is news: graver,
or naming its cause), with its evidence in units, and every epoch adds the run's series as
scalars (exporters/series.py: RSS, GPU memory, epoch and step time, input wait, retraces,
the hook's overhead) under `<log_dir>/epochwatch`: TensorBoard shows them beside `train/`
and `validation/`, at the epoch Keras logs its own scalars at. Written with tf.summary in the training
process, only once TensorFlow is imported (this module is installed on its import).
EPOCHWATCH_TENSORBOARD=0 turns it off; a failure turns it off for the process (the Guard).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from epochwatch import envvars
from epochwatch.analysis.ledger import Ledger
from epochwatch.analysis.units import evidence_unit, fmt_evidence
from epochwatch.exporters.series import epoch_series

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "tensorboard export"
SUBDIR = "epochwatch"


class TensorBoardExport:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logdir: str | None = None
        self._writer: Any = None
        self._epoch = 0
        self._ledger = Ledger()

    def on_record(self, rec: dict[str, Any]) -> None:
        kind = rec.get("type")
        if kind == "fit_start":
            watched = rec["watched"] if isinstance(rec.get("watched"), dict) else {}
            dirs = [p for p, role in watched.items() if role == "tensorboard"]
            with self._lock:
                if dirs and dirs[0] != self._logdir:
                    self._close()
                    self._logdir = os.path.join(dirs[0], SUBDIR)
        elif kind == "epoch" and isinstance(rec.get("epoch"), int):
            self._epoch = rec["epoch"]
            scalars = epoch_series(rec)
            self._write(
                lambda tf: [
                    tf.summary.scalar(f"{SUBDIR}/{name}", value, step=self._epoch)
                    for name, value in scalars.items()
                ]
            )
        elif kind in ("fit_end", "run_end"):
            with self._lock:
                if self._writer is not None:
                    self._writer.flush()

    def on_finding(self, rec: dict[str, Any]) -> None:
        taken = self._ledger.take(rec)
        if taken is None or not taken[1]:
            return
        epoch = self._epoch if rec.get("update") else rec.get("epoch")
        epoch = epoch if isinstance(epoch, int) else self._epoch
        text = finding_markdown(rec)
        self._write(lambda tf: tf.summary.text(f"{SUBDIR}/{rec.get('kind')}", text, step=epoch), flush=True)

    def _write(self, body: Any, flush: bool = False) -> None:
        with self._lock:
            if self._logdir is None:
                return
            # The script's own TensorFlow (this module installs only once it was imported):
            # taken from sys.modules, never imported here (only integrations/ imports a framework).
            tf = sys.modules.get("tensorflow")
            if tf is None:
                return

            if self._writer is None:
                # Not watched as the script's logs (integrations/summary_dirs.py): the hook's own.
                create = getattr(tf.summary.create_file_writer, "__wrapped__", tf.summary.create_file_writer)
                self._writer = create(self._logdir)
            with tf.init_scope(), self._writer.as_default():
                body(tf)
            if flush:
                self._writer.flush()

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def finding_markdown(rec: dict[str, Any]) -> str:
    """A finding as Markdown: title, evidence in units (as the reports show it), fix."""
    lines = [f"**{rec.get('severity')}** `{rec.get('kind')}`: {rec.get('title')}", ""]
    evidence = rec.get("evidence")
    if isinstance(evidence, dict):
        unit = evidence_unit(str(rec.get("kind")), evidence)  # with units, as the reports show it
        lines += [
            f"- {k}: {fmt_evidence(str(k), v, unit)}"
            for k, v in list(evidence.items())[:20]
            if not isinstance(v, dict | list)
        ]
    if rec.get("hint"):
        lines += ["", f"Fix: {rec['hint']}"]
    return "\n".join(lines)


def install(recorder: Recorder) -> None:
    if not envvars.switched_on(envvars.EPOCHWATCH_TENSORBOARD, recorder.environ):
        return
    export = TensorBoardExport()
    recorder.add_listener(export.on_record, PART)
    recorder.add_finding_listener(export.on_finding, PART)
