"""In the daemon, disk_growth's free space comes from what the run's worker recorded, never
from root stat'ing a path that a user's records name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import synthetic as syn
from epochwatch.analysis.detectors import disk
from epochwatch.analysis.engine import analyze
from epochwatch.analysis.run import Run
from epochwatch.daemon.runwatch import _entry

MIB = syn.MIB


def _free_source(path: str, **entry: Any) -> str:
    run = Run("t")
    for r in syn.trace(30, lambda i: {"dirs": {path: {"bytes": 20 * MIB * i, "files": i, **entry}}}):
        run.add(r)
    (found,) = [f for f in analyze(run) if f.kind == "disk_growth"]
    return str(found.evidence["free_source"])


def test_the_daemon_never_measures_a_path_from_a_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _free_source(str(tmp_path)).startswith("measured")  # report, check, the hook
    monkeypatch.setattr(disk, "MEASURE_HERE", False)  # what the daemon's registry sets
    assert _free_source(str(tmp_path)) == "unknown"
    assert _free_source(str(tmp_path), free_bytes=5000 * MIB) == "recorded in the trace"


def test_a_workers_free_bytes_pass_only_as_a_count() -> None:
    assert _entry({"bytes": 1, "files": 1, "role": "checkpoint", "free_bytes": 7})["free_bytes"] == 7  # type: ignore[index]
    for bad in (-1, "7", True, 7.5):
        assert "free_bytes" not in (_entry({"bytes": 1, "files": 1, "free_bytes": bad}) or {})
    assert _entry({"bytes": 1, "files": 1, "role": ["x"]}) == {"bytes": 1, "files": 1, "role": "user"}
