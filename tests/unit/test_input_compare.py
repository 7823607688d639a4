"""A resumed run slower than its parent: the input pipeline named when it is what changed."""

from __future__ import annotations

from typing import Any

from epochwatch.analysis import restore as det
from epochwatch.analysis.input_compare import input_difference
from epochwatch.analysis.restore.lineage import build_lineage
from tests.unit import restore_records as rr

WORKERS = {"kind": "PyDataset", "workers": 8, "use_multiprocessing": True, "max_queue_size": 16}
NO_WORKERS = {"kind": "PyDataset", "workers": 1, "use_multiprocessing": False, "max_queue_size": 10}


def _with_input(
    records: list[dict[str, Any]], settings: dict[str, Any], waits: list[float]
) -> list[dict[str, Any]]:
    out, epochs = [], iter(waits)
    for rec in records:
        rec = dict(rec)
        if rec["type"] == "fit_start":
            rec["input"] = {"kind": settings["kind"], "settings": settings}
        elif rec["type"] == "epoch":
            rec["input_wait_seconds"] = next(epochs)
        out.append(rec)
    return out


def _slowdown(
    parent_settings: dict[str, Any], child_settings: dict[str, Any], child_waits: list[float]
) -> Any:
    parent = rr.make_run(_with_input(rr.parent_records(), parent_settings, [1.0] * 5))
    child_recs = rr.child_records(losses=(0.55, 0.5, 0.45, 0.4), seconds=(30.0, 25.0, 26.0, 25.0))
    child = rr.make_run(_with_input(child_recs, child_settings, child_waits))
    found = {f.kind: f.to_dict() for f in det.detect(child, build_lineage([parent, child]))}
    return found["restore_slowdown"]


def test_a_resume_without_the_parents_workers_names_the_input_pipeline() -> None:
    f = _slowdown(WORKERS, NO_WORKERS, [20.0, 16.0, 16.5, 16.0])
    ev = f["evidence"]["input"]
    assert ev["wait_ms_per_step"] == {"parent": 10.0, "child": 160.0}
    assert ev["settings_changed"]["workers"] == {"parent": 8, "child": 1}
    assert "wait" in f["title"] and "workers 8 -> 1" in f["title"]
    assert "input settings" in f["hint"]


def test_a_slowdown_the_input_does_not_explain_keeps_the_general_hint() -> None:
    f = _slowdown(WORKERS, WORKERS, [1.0, 1.0, 1.0, 1.0])  # same settings, same wait: something else
    assert f["evidence"]["input"]["wait_ms_per_step"] == {"parent": 10.0, "child": 10.0}
    assert "settings_changed" not in f["evidence"]["input"]
    assert "retraces" in f["hint"] and "wait" not in f["title"]


def test_nothing_known_about_the_input_adds_nothing() -> None:
    assert input_difference(None, [], None, []) is None
    epochs = [{"seconds": 10.0, "steps": 100}]
    assert input_difference({"input": {"kind": "ndarray"}}, epochs, {}, epochs) is None
