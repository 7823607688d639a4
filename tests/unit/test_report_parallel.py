"""report over many traces: a glob, and worker processes that give exactly the serial result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from epochwatch.cli import main
from epochwatch.trace.writer import TraceWriter


def _trace(path: Path, run_id: str, leak_mib: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with TraceWriter(path) as w:
        w.write({"type": "run_start", "run_id": run_id, "schema": 1, "env": {"memory_total_bytes": 64 << 30}})
        for n in range(40):
            rss = (2 << 30) + int(n * leak_mib * (1 << 20)) + (n % 3) * (1 << 20)
            w.write(
                {
                    "type": "epoch",
                    "run_id": run_id,
                    "epoch": n,
                    "seconds": 1.0 + 0.01 * (n % 4),
                    "host": {"rss_bytes": rss, "sys_total_bytes": 64 << 30},
                    "metrics": {"loss": 1 / (n + 1)},
                }
            )
        w.write({"type": "run_end", "run_id": run_id, "ended": "completed"})


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    for h in range(3):
        for r in range(2):
            _trace(
                tmp_path / f"host-{h}" / "traces" / f"run-{h}-{r}.jsonl", f"run-{h}-{r}", leak_mib=40.0 * r
            )
    return tmp_path


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["report", *argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_workers_give_the_serial_report(hosts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    serial = _json(capsys, str(hosts), "--jobs", "1")
    parallel = _json(capsys, str(hosts), "--jobs", "2")
    assert [r["run_id"] for r in serial["runs"]] == [f"run-{h}-{r}" for h in range(3) for r in range(2)]
    assert parallel == serial
    leaking = {
        r["run_id"] for r in serial["runs"] if any(f["kind"] == "host_memory_growth" for f in r["findings"])
    }
    assert leaking == {"run-0-1", "run-1-1", "run-2-1"}


def test_a_quoted_glob_is_expanded(hosts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _json(capsys, str(hosts / "host-*" / "traces"))
    assert len(doc["runs"]) == 6
    doc = _json(capsys, str(hosts / "**" / "run-*-1.jsonl"))
    assert sorted(r["run_id"] for r in doc["runs"]) == ["run-0-1", "run-1-1", "run-2-1"]
    assert main(["report", str(hosts / "nothing-*")]) == 2
    assert "no file or directory matches this pattern" in capsys.readouterr().err
