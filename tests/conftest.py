"""Suite-wide fixtures, and the suite's split across pytest-xdist workers.

`make test` distributes with `--dist loadfile`: a test file runs whole on one worker, so its
module fixtures run once. The files that read one session fixture (tests/integration/conftest.py)
go to one worker together (`SHARED`), so that fixture runs once in the suite too. (xdist's own
`--dist loadgroup` would say this with marks, but it renames node ids in a way pytest 9 ignores.)

`_no_thread_leaks` (after watchdog's own test suite): every test must stop the threads it
starts. A leaked observer or sender thread in a test is a leaked thread in someone's
training process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling

# A test file -> the name of the files that share its session fixture.
SHARED = {
    "tests/integration/test_console.py": "leak_run",
    "tests/integration/test_detection_tf.py": "leak_run",
    "tests/integration/test_distributed.py": "mwms_jobs",
    "tests/integration/test_prometheus_rules_real_job.py": "mwms_jobs",
}


# The units that keep a worker longest (tens of seconds each, `--durations`) for their few
# tests: xdist hands out the units with the most tests first, which left these to the end,
# one worker still running one while the other had nothing left. They go first.
FIRST = (
    # the serial lane's: its two soaks (60 s and 31 s, one test each) came last, after the
    # files of many short tests, and the lane took 117 s for 70 s of one worker's tests
    "tests/integration/test_daemon_bounds_soak.py",
    "tests/integration/test_daemon_soak.py",
    "tests/integration/test_trust_exit.py",
    "mwms_jobs",
    "tests/integration/test_models_in_loop.py",
    "tests/integration/test_notebook.py",
    "tests/integration/test_exporters.py",
    "tests/integration/test_run_command.py",
    "tests/integration/test_views_agree.py",
    "tests/integration/test_trust_restore.py",
)


class _FilesTogether(LoadFileScheduling):
    """--dist loadfile, with each group of SHARED one unit of work, the FIRST ones first."""

    _ordered = False

    def _split_scope(self, nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return SHARED.get(path, path)

    def _assign_work_unit(self, node: Any) -> None:
        if not self._ordered:
            self._ordered = True
            for scope in reversed(FIRST):
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)
        super()._assign_work_unit(node)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadFileScheduling | None:
    return _FilesTogether(config, log) if config.getvalue("dist") == "loadfile" else None


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    leaked: list[threading.Thread] = []
    while time.monotonic() < deadline:
        leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leaked:
            return
        time.sleep(0.05)
    pytest.fail(f"test leaked threads: {[t.name for t in leaked]}")
