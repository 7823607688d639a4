"""Offline and online analysis of traces: a run folded into series, trend statistics,
detectors, findings.

`analyze(run)` (engine.py) gives a finished run's findings; `OnlineAnalyzer` (online.py)
gives them while a run goes; `analyze_file` (files.py) is what `report` and `check` call.
Import them from their modules: this package imports nothing itself, so that taking one
small module of it (`units` for `top`, `findings` for the daemon's metrics) does not load
the detectors.
"""
