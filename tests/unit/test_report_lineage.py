"""report and check over traces gathered from several hosts: lineage found offline, by hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from epochwatch.cli import main
from epochwatch.trace.writer import TraceWriter
from tests.unit import restore_records as rr


def _write(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with TraceWriter(path) as w:
        for rec in records:
            w.write(rec)


@pytest.fixture
def gathered(tmp_path: Path) -> Path:
    """A parent on host A; on host B a child that restored its save with a fresh optimizer.

    The child's restore record has no `parent` link: its hook could not see host A's traces.
    """
    _write(tmp_path / "host-a" / "parent.jsonl", rr.parent_records())
    child = rr.child_records(
        restore_over={"iterations": 0, "optimizer": {"class": "Adam", "iterations": 0}},
        start_step=0,
        losses=(1.2, 1.0, 0.9),  # and the loss jumped: a warning
    )
    assert "parent" not in next(r for r in child if r["type"] == "restore")
    _write(tmp_path / "host-b" / "child.jsonl", child)
    return tmp_path


def test_text_report_shows_lineage_and_the_restore_finding(
    gathered: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(gathered)]) == 0
    out = capsys.readouterr().out
    head = out.split("== run")[0]
    assert head.startswith("lineage") and "parent" in head and "child" in head
    assert "optimizer_state_not_restored" in out


def test_json_report_carries_links(gathered: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(gathered), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (link,) = [link for link in doc["lineage"]["links"] if link["match"] == "sha256"]
    assert (link["parent"], link["child"]) == ("parent", "child")
    child = next(r for r in doc["runs"] if r["run_id"] == "child")
    (finding,) = [f for f in child["findings"] if f["kind"] == "optimizer_state_not_restored"]
    assert finding["evidence"]["parent_run"] == "parent"  # judged against the parent found offline


def test_check_fails_on_the_restore_finding_across_hosts(gathered: Path) -> None:
    assert main(["check", str(gathered), "--fail-on", "warning"]) == 1
