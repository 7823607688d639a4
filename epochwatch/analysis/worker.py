"""Online detection on its own thread, so an epoch's end costs the training thread only a queue append.

The hook's Recorder writes each record, then hands the ones the analysis follows to this
worker. The worker feeds them, in order, to an analyzer (the hook's `GuardedAnalyzer`
builds its `OnlineAnalyzer` here, at the first record: importing the detectors costs tens
of milliseconds the training thread should not pay) and passes the findings back through
a callback (which writes them to the trace). Nothing here is lost or reordered: one
thread, one FIFO queue.

Two budgets keep it cheap, since a thread still takes CPU (and the GIL) from the process:

- Detectors run within `share` of the training time (the epochs' `seconds`), measured in
  this thread's CPU time, after a starting allowance: on long epochs every epoch is
  judged, on runs of tiny epochs only every few. Every epoch is still recorded in the
  analyzer's run, so no evidence is missing when the detectors do run.
- The queue is bounded: past `limit` records waiting, new ones are dropped and online
  detection says so once (the trace itself is complete; `report` judges it all later).

Its CPU time (`cpu_seconds`, this thread's `time.thread_time()`) is part of the hook's
`overhead_seconds`: moving work to a thread must not make the figure look better.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

SHARE = 0.002  # of the training time, for detector steps
START_CREDIT = 0.05  # seconds of detector time before the share applies
CREDIT_CAP = 1.0
LIMIT = 4096  # records waiting at most (an epoch record is ~1 kB)
JOIN_SECONDS = 5.0  # the run's end waits this long at most for the last epochs' detection

Record = dict[str, Any]


QUEUED_RECORD_BYTES = 2048  # a queued epoch record with its blocks, as a dict (estimate)


class FellBehind(RuntimeError):
    """More than `limit` records wait: online detection stops (the trace stays complete)."""


class AnalysisWorker:
    """Runs `analyzer.add(record, evaluate=...)` on one daemon thread, in submission order."""

    def __init__(
        self,
        analyzer: Any,
        on_findings: Callable[[list[Record]], None],
        on_error: Callable[[BaseException], None],
        *,
        share: float = SHARE,
        limit: int = LIMIT,
    ) -> None:
        self.analyzer = analyzer
        self.share = share
        self.limit = limit
        self.credit = START_CREDIT
        self.last_cost = 0.0
        self._interval_seconds = 0.0  # of the open epoch's intervals, already credited
        self.cpu_seconds = 0.0
        self.dropped = 0
        self._on_findings = on_findings
        self._on_error = on_error
        self._queue: deque[tuple[Record, bool] | None] = deque()
        self._cv = threading.Condition()
        self._busy = False
        self._failed = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # -- the training thread's side ------------------------------------------------------------

    def submit(self, record: Record, *, judge: bool = True) -> bool:
        """Queue one record (a deque append); False when it was dropped (queue full, or failed).

        judge=False records the epoch without a detector step (a daemon judges this run).
        """
        if self._failed:
            return False
        if os.getpid() != self._pid:  # a forked child: the parent's thread is not here
            self._pid, self._thread, self._busy = os.getpid(), None, False
            self._cv = threading.Condition()
            self._queue.clear()
        with self._cv:
            if len(self._queue) >= self.limit:
                self.dropped += 1
                if self.dropped == 1:
                    self._on_error(
                        FellBehind(
                            f"it fell behind the training by more than {self.limit} records; "
                            "the trace stays complete (run `epochwatch report` on it)"
                        )
                    )
                return False
            self._queue.append((record, judge))
            self._start()
            self._cv.notify()
        return True

    def footprint_bytes(self) -> int:
        """What the worker holds: the analyzer's run and the records waiting for it."""
        return int(self.analyzer.footprint_bytes()) + len(self._queue) * QUEUED_RECORD_BYTES

    def start(self) -> None:
        """Start the thread now rather than at the first record (off the training thread:
        a thread start can wait for a core on a busy machine)."""
        with self._cv:
            self._start()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="epochwatch-analysis", daemon=True)
            self._thread.start()

    def drain(self, timeout: float = JOIN_SECONDS) -> bool:
        """Wait until every queued record is processed; False if `timeout` ran out first."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while (self._queue or self._busy) and not self._failed:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cv.wait(left)
        return True

    def close(self, timeout: float = JOIN_SECONDS, *, final: bool = False) -> bool:
        """Process what is queued (within `timeout`), then stop the thread.

        final: also give the analyzer's end-of-run verdict (`OnlineAnalyzer.finish`: all the
        evidence, without waiting for persistence) to `on_findings`, once the queue is done.
        """
        done = self.drain(timeout)
        if final and done and not self._failed:
            finish = getattr(self.analyzer, "finish", None)
            try:
                found = list(finish() or []) if callable(finish) else []
            except Exception as exc:
                self._failed = True
                self._on_error(exc)
                found = []
            if found:
                self._on_findings(found)
        with self._cv:
            self._queue.append(None)
            self._cv.notify()
        thread = self._thread
        if thread is not None and done:
            thread.join(0.5)
        return done

    # -- the worker -------------------------------------------------------------------------------

    def process(self, record: Record, judge: bool = True) -> list[Record]:
        """One record through the analyzer, within the time budget (the worker calls this;
        tests may call it directly)."""
        if record.get("type") not in ("epoch", "interval"):
            return list(self.analyzer.add(record) or [])
        seconds = float(record.get("seconds") or 0.0)
        if record["type"] == "interval":  # its time is earned once: the epoch's record holds it too
            self._interval_seconds += seconds
        else:
            seconds, self._interval_seconds = max(0.0, seconds - self._interval_seconds), 0.0
        self.credit = min(self.credit + seconds * self.share, CREDIT_CAP)
        evaluate = judge and self.credit >= self.last_cost
        t0 = time.thread_time()
        found = list(self.analyzer.add(record, evaluate=evaluate) or [])
        if evaluate:
            self.last_cost = time.thread_time() - t0
            self.credit -= self.last_cost
        return found

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue:
                    self._cv.wait()
                item = self._queue.popleft()
                if item is None:
                    self._cv.notify_all()
                    return
                self._busy = True
            try:
                found = self.process(*item)
                if found:
                    self._on_findings(found)
            except BaseException as exc:  # handed to the Recorder's guard; the thread stops
                self._failed = True
                self._on_error(exc)
            finally:
                self.cpu_seconds = time.thread_time()
                with self._cv:
                    self._busy = False
                    if self._failed:
                        self._queue.clear()
                    self._cv.notify_all()
            if self._failed:
                return
