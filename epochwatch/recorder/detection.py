"""Online detection as the Recorder holds it: records go to an `AnalysisWorker`
(analysis/worker.py) running the guarded analyzer (analysis/guarded.py) on its own thread;
its findings come back to be written after the epoch that raised them.

A failure or falling behind switches online detection off through the Recorder's Guard,
said once; the trace stays complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from epochwatch.guard import Guard

PART = "online detection"
# `hook_bytes` is summed at most this often (seconds): the sum walks the analyzer's records,
# about a millisecond of the training thread at each fit_end of a loop of short fits.
FOOTPRINT_SECONDS = 2.0


class OnlineDetection:
    """One run's online detection: `write(finding)` is called on the analysis thread."""

    def __init__(self, guard: Guard, write: Callable[[dict[str, Any]], None]) -> None:
        self._guard = guard
        self._write = write
        self._worker: Any = None  # an AnalysisWorker, made by prepare() or at the run's start
        self._footprint = (0, -FOOTPRINT_SECONDS)  # (bytes, time.monotonic() when summed)

    def prepare(self, *, start_thread: bool = False) -> None:
        """Make the worker (importing it), and with start_thread its thread (off the
        training thread: a thread start can wait for a core on a busy machine)."""
        if self._worker is None:
            self._worker = self._guard.run(PART, self._new_worker, None)
        if start_thread and self._worker is not None:
            self._guard.run(PART, self._worker.start, None)

    def submit(self, rec: dict[str, Any], judge: bool = True) -> None:
        """Queue a record (a deque append); judge=False only records it (a daemon judges)."""
        worker = self._worker
        if worker is not None and self._guard.enabled(PART):  # it says once if it falls behind
            worker.submit(rec, judge=judge)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record submitted so far has been judged."""
        return True if self._worker is None else bool(self._worker.drain(timeout))

    def close(self, *, final: bool) -> None:
        """Judge what is queued, with the end-of-run verdict when `final`, and stop the thread."""
        worker = self._worker
        if worker is not None:
            self._guard.run(PART, lambda: worker.close(final=final and self._guard.enabled(PART)), None)

    @property
    def cpu_seconds(self) -> float:
        """The analysis thread's CPU time so far (the hook's overhead counts it)."""
        return float(getattr(self._worker, "cpu_seconds", 0.0) or 0.0)

    def footprint_bytes(self) -> int:
        """`hook_bytes` (every `fit_end`): what the hook holds in this process, so a trace whose
        process grows can show the hook is not what grows, without tracemalloc (which would
        cost every allocation of the script). The sizes of what grows with the run: the online
        analyzer's run (its columns and records, analysis/run.Run.footprint_bytes) and the
        records waiting for the analysis thread, as summed within the last FOOTPRINT_SECONDS
        (it grows by a record's size per epoch: a sum two seconds old is as good as a new one)."""
        worker, (held, when) = self._worker, self._footprint
        now = time.monotonic()
        if worker is not None and now - when >= FOOTPRINT_SECONDS:
            held = int(self._guard.run(PART, worker.footprint_bytes, 0) or 0)
            self._footprint = (held, now)
        return held

    def _new_worker(self) -> Any:
        from epochwatch.analysis.guarded import GuardedAnalyzer
        from epochwatch.analysis.worker import AnalysisWorker, FellBehind

        def failed(exc: BaseException) -> None:
            reason = str(exc) if isinstance(exc, FellBehind) else f"{type(exc).__name__}: {exc}"
            self._guard.disable(PART, reason.splitlines()[0][:300])

        return AnalysisWorker(GuardedAnalyzer(failed), self._found, failed)

    def _found(self, found: list[dict[str, Any]]) -> None:
        for finding in found:
            self._write(finding)
