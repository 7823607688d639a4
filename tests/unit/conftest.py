"""Fixtures shared by the unit tests of the daemon's session (test_daemon_session, test_views_daemon)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from epochwatch.daemon.config import Sampling
from epochwatch.daemon.runsamplers import NvmlHub
from epochwatch.daemon.session import Session
from epochwatch.daemon.store import SessionState, TraceFile, prepare_dirs


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    traces, _ = prepare_dirs(tmp_path)
    trace = TraceFile.create(traces, "r", uid=os.getuid(), mode=0o640)
    state = SessionState("r", "h", os.getuid(), os.getgid(), 0, 0.0, 1000.0)
    s = Session(state, trace, sampling=Sampling(full_rate_seconds=1e9), online=False, hub=NvmlHub())
    yield s
    s.trace.close()
