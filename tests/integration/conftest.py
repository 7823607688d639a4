"""Training scenarios that several tests read: each runs once per session, in its own fresh
interpreter, and the tests share what it left (its trace, its stdout and stderr). A test
that reads a shared run must not change it."""

from __future__ import annotations

import pytest

from tests.support import LEAK_30, FinishedRun, private_env, run_python


@pytest.fixture(scope="session")
def leak_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """tests.support.LEAK_30 in embedded mode: a 24 MB-an-epoch leak over 30 epochs."""
    root = tmp_path_factory.mktemp("leak30")
    proc = run_python(LEAK_30, root, env=private_env(root, XDG_CACHE_HOME=str(root / "cache")))
    return FinishedRun(root, proc)
