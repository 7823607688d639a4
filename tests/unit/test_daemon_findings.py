"""The daemon's journal says a finding at the finding's own severity (issue 26: an info
finding was journalled at WARNING, and every update of an episode again)."""

from __future__ import annotations

import logging

import pytest

from epochwatch.daemon.findings import log_finding


def _levels(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records]


def test_severity_is_the_findings_and_updates_that_are_not_news_are_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="epochwatch.daemon")
    log_finding("r", {"kind": "disk_growth", "severity": "info", "title": "grows"}, news=True)
    log_finding("r", {"kind": "disk_growth", "severity": "info", "title": "grows", "update": 1}, news=False)
    log_finding("r", {"kind": "disk_growth", "severity": "warning", "title": "fills", "update": 2}, news=True)
    log_finding("r", {"kind": "swap_pressure", "severity": "critical", "title": "swaps"}, news=True)
    assert _levels(caplog) == [
        (logging.INFO, "run r: info finding disk_growth: grows"),
        (logging.DEBUG, "run r: update 1 of disk_growth (info): grows"),
        (logging.WARNING, "run r: update 2 of disk_growth (warning): fills"),
        (logging.CRITICAL, "run r: critical finding swap_pressure: swaps"),
    ]
