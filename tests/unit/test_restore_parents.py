"""Parent runs of restores: read through a ParentCache the caller owns, never module state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from epochwatch.analysis.engine import analyze
from epochwatch.analysis.online import OnlineAnalyzer
from epochwatch.analysis.restore import ParentCache
from epochwatch.analysis.restore.lineage import build_lineage
from epochwatch.trace.writer import TraceWriter
from tests.unit import restore_records as rr


def write_trace(path: Path, records: list[dict[str, Any]]) -> Path:
    with TraceWriter(path) as w:
        for rec in records:
            w.write(rec)
    return path


def linked_child(trace: Path) -> list[dict[str, Any]]:
    link = {"run_id": "parent", "trace": str(trace), "match": "sha256", "save_sha256": rr.SHA}
    return rr.child_records(restore_over={"parent": link}, fit_over={"batch_size": 64})


def test_a_trace_is_read_once_and_kept(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "parent.jsonl", rr.parent_records())
    cache = ParentCache()
    first = cache.get(trace)
    assert first is not None and first.run_id == "parent"
    trace.unlink()
    assert cache.get(trace) is first
    assert cache.get(tmp_path / "missing.jsonl") is None
    assert ParentCache().get(trace) is None  # another cache shares nothing


def test_known_runs_are_never_read(tmp_path: Path) -> None:
    parent = rr.make_run(rr.parent_records(), path=tmp_path / "parent.jsonl")  # no such file
    assert ParentCache([parent]).get(tmp_path / "parent.jsonl") is parent


def test_loaded_traces_are_bounded(tmp_path: Path) -> None:
    traces = [write_trace(tmp_path / f"p{i}.jsonl", rr.parent_records(f"p{i}")) for i in range(3)]
    cache = ParentCache(limit=2)
    assert all(cache.get(t) is not None for t in traces)
    traces[0].unlink()
    traces[2].unlink()
    assert cache.get(traces[0]) is None  # first in, first out: read again, and gone
    assert cache.get(traces[2]) is not None


def test_build_lineage_leaves_no_state_behind(tmp_path: Path) -> None:
    """A lineage built over loaded runs does not make them parents of a later analysis."""
    parent = rr.make_run(rr.parent_records(), path=tmp_path / "parent.jsonl")  # no such file
    child = rr.make_run(rr.child_records(fit_over={"batch_size": 64}))
    build_lineage([parent, child])
    assert analyze(child) == []
    kinds = [f.kind for f in analyze(child, parents=ParentCache([parent]))]
    assert kinds == ["hyperparameter_changed_after_restore"]


def test_online_analyzer_follows_the_restore_record_with_its_own_cache(tmp_path: Path) -> None:
    """The daemon's path: the restore carries `parent.trace`; the analyzer reads it once."""
    trace = write_trace(tmp_path / "parent.jsonl", rr.parent_records())
    records = linked_child(trace)
    analyzer = OnlineAnalyzer(records[0])
    found = [f for rec in records[1:] for f in analyzer.add(rec)]
    assert [f["kind"] for f in found] == ["hyperparameter_changed_after_restore"]
    assert found[0]["evidence"]["parent_run"] == "parent"
    trace.unlink()
    cached = analyzer.parents.get(trace)
    assert cached is not None and cached.run_id == "parent"


def test_a_restore_records_parent_time_that_is_no_number_matches_any(tmp_path: Path) -> None:
    """A trace's `parent.saved_at` is a trace's field, so anything: a string there stopped
    `report` with a TypeError where the save's bytes matched."""
    trace = write_trace(tmp_path / "parent.jsonl", rr.parent_records())
    for hostile in ("yesterday", None, [1], True):
        records = linked_child(trace)
        next(r for r in records if r["type"] == "restore")["parent"]["saved_at"] = hostile
        analyzer = OnlineAnalyzer(records[0])
        found = [f for rec in records[1:] for f in analyzer.add(rec)]
        assert [f["evidence"].get("parent_run") for f in found] == ["parent"], hostile
