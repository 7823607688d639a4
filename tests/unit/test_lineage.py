"""Lineage: restores matched to saves by hash, offline and by a bounded scan at restore time."""

from __future__ import annotations

import os
from pathlib import Path

from epochwatch.analysis.restore.lineage import MATCH_PATH, MATCH_SHA256, build_lineage
from epochwatch.analysis.restore.scan import find_parent
from epochwatch.trace.writer import TraceWriter
from tests.unit import restore_records as rr


def write_trace(path: Path, records: list[dict]) -> Path:
    with TraceWriter(path) as w:
        for rec in records:
            w.write(rec)
    return path


def test_child_links_to_parent_by_hash_even_after_a_move() -> None:
    parent = rr.make_run(rr.parent_records())
    child = rr.make_run(rr.child_records(restore_over={"path": "/copied/elsewhere.keras"}))
    lineage = build_lineage([parent, child])
    (link,) = lineage.links
    assert (link.child, link.parent, link.match) == ("child", "parent", MATCH_SHA256)
    assert lineage.roots() == ["parent"]
    assert [lk.child for lk in lineage.children_of("parent")] == ["child"]
    assert lineage.to_dict()["links"][0]["save_iterations"] == 500


def test_latest_save_of_the_same_bytes_before_the_restore_wins() -> None:
    early = rr.make_run(rr.parent_records("early"))
    late_records = rr.parent_records("late")
    for rec in late_records:
        rec["t"] = rec["t"] + 100
        for key in ("saved_at", "start"):
            if key in rec:
                rec[key] += 100
    late = rr.make_run(late_records)
    after = rr.make_run(rr.parent_records("after"))
    after.saves[0]["saved_at"] = 5000.0  # saved after the child restored: cannot be its parent
    child = rr.make_run(rr.child_records())
    (link,) = build_lineage([early, late, after, child]).links
    assert link.parent == "late"


def test_own_save_is_not_a_parent_and_not_a_modification() -> None:
    records = rr.parent_records("solo")
    records.append(rr.restore("solo", 1100.0))
    assert build_lineage([rr.make_run(records)]).links == []


def test_same_path_other_bytes_is_a_modified_link() -> None:
    parent = rr.make_run(rr.parent_records())
    child = rr.make_run(rr.child_records(restore_over={"sha256": rr.OTHER_SHA}))
    (link,) = build_lineage([parent, child]).links
    assert link.match == MATCH_PATH
    assert build_lineage([parent, child]).text_lines() == []  # a modified file is no parent


def test_text_tree() -> None:
    parent = rr.make_run(rr.parent_records())
    child = rr.make_run(rr.child_records())
    grandchild_records = rr.child_records("grandchild", restore_over={"sha256": "c" * 64})
    for rec in grandchild_records:
        rec["t"] += 1000
    grandchild = rr.make_run(grandchild_records)
    child.saves.append(rr.save("child", 2100.0, sha="c" * 64, iterations=800))
    lines = build_lineage([grandchild, child, parent]).text_lines()
    assert lines == [
        "parent",
        "  child  <- model.keras (saved at step 500)",
        "    grandchild  <- model.keras (saved at step 800)",
    ]


def test_no_lineage_no_lines() -> None:
    assert build_lineage([rr.make_run(rr.parent_records())]).text_lines() == []


def test_find_parent_scans_newest_first_and_skips_itself(tmp_path: Path) -> None:
    old = write_trace(tmp_path / "old.jsonl", rr.parent_records("old"))
    new = write_trace(tmp_path / "new.jsonl", rr.parent_records("new"))
    me = write_trace(tmp_path / "me.jsonl", [rr.run_start("me", 1.0), rr.save("me", 1.0)])
    os.utime(old, (1, 1))
    os.utime(new, (2, 2))
    os.utime(me, (3, 3))
    found = find_parent([tmp_path], rr.SHA, rr.PATH, exclude_run_id="me")
    assert found is not None and (found.run_id, found.match, found.trace) == ("new", MATCH_SHA256, new)


def test_find_parent_by_path_when_no_bytes_match(tmp_path: Path) -> None:
    write_trace(tmp_path / "p.jsonl", rr.parent_records("p"))
    found = find_parent([tmp_path], rr.OTHER_SHA, rr.PATH)
    assert found is not None and found.match == MATCH_PATH and found.save["sha256"] == rr.SHA
    assert find_parent([tmp_path], rr.OTHER_SHA, "/another/path.keras") is None


def test_find_parent_is_bounded(tmp_path: Path) -> None:
    filler = [rr.epoch("p", n, float(n)) for n in range(2000)]  # ~0.5 MB before the save
    write_trace(tmp_path / "p.jsonl", [rr.run_start("p", 0.0), *filler, rr.save("p", 3000.0)])
    assert find_parent([tmp_path], rr.SHA, None) is not None
    assert find_parent([tmp_path], rr.SHA, None, max_bytes=64 * 1024) is None
    assert find_parent([tmp_path], rr.SHA, None, max_files=0) is None
    assert find_parent([tmp_path / "missing"], rr.SHA, None) is None


def test_find_parent_ignores_saves_after_the_restore(tmp_path: Path) -> None:
    write_trace(tmp_path / "p.jsonl", rr.parent_records("p"))
    assert find_parent([tmp_path], rr.SHA, None, before=10.0) is None


def test_scan_then_annotate_one_run_at_a_time(tmp_path: Path) -> None:
    """The report's path: a cheap scan of every file, then each run loaded and analyzed alone."""
    from epochwatch.analysis.engine import analyze
    from epochwatch.analysis.restore.scan import scan_lineage
    from epochwatch.analysis.run import load_run

    parent = write_trace(tmp_path / "parent.jsonl", rr.parent_records())
    child = write_trace(tmp_path / "child.jsonl", rr.child_records(fit_over={"batch_size": 64}))
    lineage = scan_lineage([parent, child])
    assert lineage.text_lines() == ["parent", "  child  <- model.keras (saved at step 500)"]
    run = load_run(child)
    assert lineage.annotate(run) == 1
    assert run.restores[0]["parent"]["trace"] == str(parent)
    assert [f.kind for f in analyze(run)] == ["hyperparameter_changed_after_restore"]
    assert lineage.annotate(run) == 0  # already linked
