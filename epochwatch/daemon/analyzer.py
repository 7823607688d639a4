"""The daemon's online detection for one run: `OnlineAnalyzer` behind a guard.

A missing package or a failing detector costs one log line and switches detection off for
that run (or, for a missing package, every run), never the daemon.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("epochwatch.daemon")
Record = dict[str, Any]


class Analyzer:
    """OnlineAnalyzer behind a guard: missing package or a failing detector costs one log line."""

    unavailable: str | None = None  # why online detection is off for every run, once

    def __init__(self, run_id: str, enabled: bool, parents: Any = None) -> None:
        self.run_id = run_id
        self._impl: Any = None
        self._failed = not enabled
        self._parents = parents  # where restores find their parent runs (daemon/parents.py)

    def start(self, run_start: Record | None) -> None:
        if self._failed or self._impl is not None:
            return
        try:
            from epochwatch.analysis.online import OnlineAnalyzer
        except ImportError as exc:
            if Analyzer.unavailable is None:
                Analyzer.unavailable = str(exc)
                log.warning("online detection unavailable: %s", exc)
            self._failed = True
            return
        try:
            self._impl = OnlineAnalyzer(run_start)
            if self._parents is not None:
                self._impl.parents = self._parents
            self._impl.updates = True  # episodes' updates go to the trace too
        except Exception as exc:
            self._fail(exc)

    def add(self, rec: Record) -> list[Record]:
        if self._failed:
            return []
        if self._impl is None:
            self.start(None)
            if self._impl is None:
                return []
        try:
            found = self._impl.add(rec)
        except Exception as exc:
            self._fail(exc)
            return []
        return [f for f in (found or []) if isinstance(f, dict)]

    def finish(self) -> list[Record]:
        """The verdict at the run's end (before run_end is written)."""
        finish = getattr(self._impl, "finish", None)
        if self._failed or finish is None:
            return []
        try:
            found = finish()
        except Exception as exc:
            self._fail(exc)
            return []
        return [f for f in (found or []) if isinstance(f, dict)]

    def _fail(self, exc: BaseException) -> None:
        self._failed = True
        log.error("run %s: online detection switched off: %s: %s", self.run_id, type(exc).__name__, exc)
