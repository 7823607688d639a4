"""Online detection as the Recorder drives it: records go to an `AnalysisWorker`
(analysis/worker.py) that judges them on its own thread; its findings come back here to be
kept and written; the CPU of the hook's own threads is charged to the next record.

A mix-in of the Recorder: it shares the Recorder's lock, sink and parts.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from epochwatch.guard import Guard
from epochwatch.samplers.base import Sampler

MAX_FINDINGS = 1000  # kept for `findings()`; one per (kind, target), so a run rarely has 20


class Detection:
    guard: Guard
    overhead_background: float
    _lock: threading.RLock
    _analysis: Any
    _analysis_start: dict[str, Any] | None
    _findings: list[dict[str, Any]]
    _finished: bool
    _sink: Any
    _dirs: Any
    _samplers: list[Sampler]
    _warmup_cpu: float
    _background_counted: float

    if TYPE_CHECKING:  # the Recorder's, not this mix-in's

        def _write(self, rec: dict[str, Any]) -> None: ...

    def findings(self) -> list[dict[str, Any]]:
        """The finding records online detection wrote so far (embedded mode), oldest first."""
        with self._lock:
            return list(self._findings)

    def flush_analysis(self, timeout: float = 5.0) -> bool:
        """Wait until online detection has judged every epoch recorded so far."""
        return True if self._analysis is None else bool(self._analysis.drain(timeout))

    def _submit(self, analysis: Any, rec: dict[str, Any], judge: bool = True) -> None:
        if self.guard.enabled("online detection"):  # it says once if it falls behind
            analysis.submit(rec, judge=judge)

    def _new_analysis(self) -> Any:
        from epochwatch.analysis import worker

        return worker.for_hook(lambda: self._analysis_start, self._write_findings, self.guard)

    def _write_findings(self, found: list[dict[str, Any]]) -> None:
        """On the analysis thread: write new findings after the epoch that raised them."""
        with self._lock:
            self._findings.extend(found[: max(0, MAX_FINDINGS - len(self._findings))])
            for finding in found if not self._finished else ():
                self._write(finding)

    def _background_cpu(self) -> float:
        """CPU seconds the hook's own threads used since the last call (to be charged now):
        each part that runs a thread keeps `cpu_seconds`, its thread's `time.thread_time()`
        after each piece of work, so the sum only grows."""
        parts: list[Any] = [self._analysis, self._sink, self._dirs, *self._samplers]
        total = self._warmup_cpu + sum(float(getattr(p, "cpu_seconds", 0.0) or 0.0) for p in parts)
        new = max(0.0, total - self._background_counted)
        self._background_counted = max(total, self._background_counted)
        self.overhead_background += new
        return new
