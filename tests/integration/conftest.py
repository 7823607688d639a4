"""Training scenarios that several tests read: each runs once per session, in its own fresh
interpreter, and the tests share what it left (its trace, its stdout and stderr). A test
that reads a shared run must not change it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.mwms_job import SLOW_FROM, run_job
from tests.support import LEAK_30, FinishedRun, private_env, run_python


@pytest.fixture(scope="session")
def leak_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """tests.support.LEAK_30 in embedded mode: a 24 MB-an-epoch leak over 30 epochs."""
    root = tmp_path_factory.mktemp("leak30")
    proc = run_python(LEAK_30, root, env=private_env(root, XDG_CACHE_HOME=str(root / "cache")))
    return FinishedRun(root, proc)


@pytest.fixture(scope="session")
def mwms_jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real 2-worker MultiWorkerMirroredStrategy jobs (tests/integration/mwms_job.py), their
    traces' directories: "straggler" (worker 1 slower from epoch SLOW_FROM on), "balanced"."""
    root = tmp_path_factory.mktemp("mwms")
    return {"straggler": run_job(root / "straggler", SLOW_FROM), "balanced": run_job(root / "balanced", -1)}
