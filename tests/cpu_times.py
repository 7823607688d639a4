"""A pytest plugin that records the CPU each test costs: `-p tests.cpu_times` with
SUITE_CPU_LOG=DIR writes one JSON line a test to DIR/<worker>.jsonl.

Why CPU and not wall: the suite's time on a clean clone is its CPU over the cores it has,
and a shared machine makes wall times noise. A test's CPU is the user+sys its worker and
the worker's reaped children spent from its setup to its teardown (resource.getrusage
RUSAGE_SELF and RUSAGE_CHILDREN), plus the scripts it forked from the TensorFlow zygote
(whose rusage the zygote reports with each exit: they are not the worker's children).
A session fixture's cost lands on the first test that asks for it.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import zygote_client


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime + zygote_client.children_cpu()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    cpu, wall = _cpu(), time.monotonic()
    yield
    out = os.environ.get("SUITE_CPU_LOG")
    if not out:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    line = {"test": item.nodeid, "cpu": round(_cpu() - cpu, 2), "wall": round(time.monotonic() - wall, 2)}
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / f"{worker}.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
