"""Offline and online analysis of traces: trend statistics, detectors, findings.

`analyze(run)` (engine.py) gives a finished run's findings; `OnlineAnalyzer` (online.py)
gives them while a run goes. Both are exported lazily: epochwatch.trace.run imports
analysis.series, so this package must import nothing heavy at import time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OnlineAnalyzer", "analyze"]


def __getattr__(name: str) -> Any:
    if name == "analyze":
        from epochwatch.analysis.engine import analyze

        return analyze
    if name == "OnlineAnalyzer":
        from epochwatch.analysis.online import OnlineAnalyzer

        return OnlineAnalyzer
    raise AttributeError(name)
