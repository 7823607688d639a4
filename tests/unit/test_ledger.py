"""The findings ledger: the one fold of finding records every view reads."""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.findings import from_record
from epochwatch.analysis.ledger import Ledger, counts_text


def _rec(kind: str, severity: str = "warning", target: str | None = None, **extra: Any) -> dict[str, Any]:
    type_ = "finding_update" if extra.get("update") else "finding"
    return {
        "type": type_,
        "run_id": "r",
        "kind": kind,
        "severity": severity,
        "title": kind,
        "target": target,
        **extra,
    }


def test_repeats_and_late_older_states_are_dropped_updates_replace_in_place() -> None:
    ledger = Ledger()
    first = ledger.take(_rec("slowdown", "info"))
    assert first is not None and first[1]  # the first report is news
    assert ledger.take(_rec("slowdown", "info")) is None  # the daemon's copy of it
    ledger.take(_rec("host_memory_growth"))
    grew = ledger.take(_rec("slowdown", "warning", update=2, evidence={"current": 3.0}))
    assert grew is not None and grew[1]  # graver: news
    assert ledger.take(_rec("slowdown", "info", update=1)) is None  # older, arriving late
    assert [f.kind for f in ledger.findings()] == ["slowdown", "host_memory_growth"]  # order first found
    latest = ledger.findings()[0]
    assert latest.severity == "warning" and latest.update == 2
    assert ledger.counts() == {"info": 0, "warning": 2, "critical": 0}


def test_targets_are_separate_keys_and_an_ended_episode_keeps_its_place() -> None:
    ledger = Ledger([_rec("retrace_storm", target="f"), _rec("retrace_storm", target="g")])
    taken = ledger.take(_rec("retrace_storm", target="f", update=1, ended_epoch=9))
    assert taken is not None and not taken[1]  # an ending is not said again where people look
    assert len(ledger) == 2 and ("retrace_storm", "f") in ledger
    assert [f.target for f in ledger.open()] == ["g"]
    assert ledger.records()[0]["ended_epoch"] == 9  # the record as written


def test_unknown_severities_count_as_info_and_counts_read_the_same_everywhere() -> None:
    ledger = Ledger([_rec("a", "warning"), _rec("b", "info"), _rec("c", "bogus")])
    counts = ledger.counts()
    assert counts == {"info": 2, "warning": 1, "critical": 0}
    assert counts_text(counts) == "1 warning, 2 info"
    assert counts_text(counts, short=True) == "1 warn 2 info"
    assert counts_text(Ledger().counts()) == "no findings"


def test_a_bounded_ledger_holds_small_copies_of_at_most_limit_findings() -> None:
    ledger = Ledger(limit=2, keep=lambda r: {k: r[k] for k in ("kind", "severity", "target")})
    for i in range(4):
        assert ledger.take(_rec(f"k{i}", evidence={"blob": "x" * 1000})) is not None  # each still news
    assert len(ledger) == 2 and ledger.records() == [
        {"kind": "k0", "severity": "warning", "target": None},
        {"kind": "k1", "severity": "warning", "target": None},
    ]
    assert ledger.take(_rec("k0", "critical", update=1)) is not None  # a held one still updates
    assert ledger.counts() == {"info": 0, "warning": 1, "critical": 1}


def test_string_fields_take_only_text_or_numbers_never_the_repr_of_a_structure() -> None:
    """audit13 #7: str() of a title nested 1000 deep raised RecursionError in `report`."""
    deep: Any = []
    for _ in range(1000):
        deep = [deep]
    f = from_record(
        {"type": "finding", "kind": "k", "severity": [1], "title": deep, "hint": {"a": 1}, "target": 7}
    )
    assert (f.title, f.hint, f.target, f.severity) == ("<list>", "<dict>", "7", "info")
    assert from_record({"kind": None, "title": 2.5}).kind == "unknown"
    assert from_record({"kind": True}).kind == "<bool>"
