from __future__ import annotations

import errno
from pathlib import Path

import orjson
import pytest

from epochwatch.analysis.run import load_run
from epochwatch.trace.reader import (
    MAX_LINE_BYTES,
    ReadStats,
    TraceError,
    find_traces,
    iter_records,
    record_of,
)
from epochwatch.trace.writer import MAX_DEPTH, TraceWriter, dumps_line


def _write(path: Path, *records: dict, tail: bytes = b"") -> Path:
    path.write_bytes(b"".join(dumps_line(r) for r in records) + tail)
    return path


START = {"type": "run_start", "run_id": "r1", "schema": 1}


def test_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "t.jsonl", START, {"type": "epoch", "run_id": "r1", "epoch": 0}, tail=b'{"type": "epo'
    )
    stats = ReadStats()
    records = list(iter_records(p, stats))
    assert [r["type"] for r in records] == ["run_start", "epoch"]
    assert stats.torn_tail and stats.skipped == 1 and stats.records == 2
    assert "torn last line" in stats.summary()


def test_unknown_fields_and_types_pass_through(tmp_path: Path) -> None:
    p = _write(tmp_path / "t.jsonl", START, {"type": "from_the_future", "run_id": "r1", "x": {"y": 1}})
    records = list(iter_records(p))
    assert records[1] == {"type": "from_the_future", "run_id": "r1", "x": {"y": 1}}


def test_garbage_lines_in_the_middle_are_skipped(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_bytes(
        dumps_line(START) + b"\x00\xff garbage\n[1, 2]\n\n" + dumps_line({"type": "epoch", "run_id": "r1"})
    )
    stats = ReadStats()
    assert [r["type"] for r in iter_records(p, stats)] == ["run_start", "epoch"]
    assert stats.skipped == 2 and not stats.torn_tail
    assert stats.first_problems == ["line 2: not JSON", "line 3: not a record (no string 'type')"]


def _nested(depth: int) -> bytes:
    """A finding record nested `depth` levels deep in all (the record itself is one)."""
    inner = depth - 1
    return b'{"type":"finding","kind":"x","title":' + b"[" * inner + b"]" * inner + b"}"


def test_a_record_nested_deeper_than_the_socket_allows_is_a_damaged_line(tmp_path: Path) -> None:
    """audit13 #7: a title nested 1000 deep stopped `report` on the whole trace (RecursionError)."""
    p = tmp_path / "t.jsonl"
    epoch = dumps_line({"type": "epoch", "run_id": "r1", "epoch": 0})
    p.write_bytes(dumps_line(START) + _nested(1000) + b"\n" + _nested(MAX_DEPTH) + b"\n" + epoch)
    stats = ReadStats()
    assert [r["type"] for r in iter_records(p, stats)] == ["run_start", "finding", "epoch"]
    assert stats.skipped == 1 and stats.records == 3
    assert stats.first_problems == [f"line 2: nested deeper than {MAX_DEPTH} levels"]
    assert record_of(_nested(MAX_DEPTH + 1)) is None and record_of(_nested(MAX_DEPTH)) is not None


def test_an_over_long_line_is_skipped_without_being_kept(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    huge = b'{"type": "epoch", "pad": "' + b"a" * (MAX_LINE_BYTES + 10) + b'"}\n'
    p.write_bytes(dumps_line(START) + huge + dumps_line({"type": "run_end", "run_id": "r1"}))
    stats = ReadStats()
    assert [r["type"] for r in iter_records(p, stats)] == ["run_start", "run_end"]
    assert stats.skipped == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"hello world\nthis is a README\n", "not an epochwatch trace"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "not an epochwatch trace"),
        (orjson.dumps({"type": "run_start", "run_id": "r", "schema": 99}) + b"\n", "schema 99"),
        (orjson.dumps({"type": "run_start", "run_id": "r", "schema": "one"}) + b"\n", "not an integer"),
    ],
)
def test_unusable_files_raise_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_bytes(content)
    with pytest.raises(TraceError) as info:
        list(iter_records(p))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot open"):
        list(iter_records(tmp_path / "nope.jsonl"))


def test_find_traces_expands_directories_recursively(tmp_path: Path) -> None:
    (tmp_path / "host-a").mkdir()
    (tmp_path / "host-b" / "deep").mkdir(parents=True)
    a = _write(tmp_path / "host-a" / "r1.jsonl", START)
    b = _write(tmp_path / "host-b" / "deep" / "r2.jsonl", START)
    (tmp_path / "notes.txt").write_text("not a trace")
    (tmp_path / "empty").mkdir()
    files, problems = find_traces([tmp_path, tmp_path / "missing.jsonl", tmp_path / "empty"])
    assert files == [a, b]
    assert len(problems) == 2 and "no such file" in problems[0] and "no *.jsonl" in problems[1]


def test_load_run_folds_records(tmp_path: Path) -> None:
    p = _write(
        tmp_path / "t.jsonl",
        START,
        {"type": "epoch", "run_id": "r1", "epoch": 0},
        {"type": "sample", "run_id": "r1"},
        {"type": "epoch", "run_id": "r1", "epoch": 1},
    )
    run = load_run(p)
    assert run.run_id == "r1" and len(run.epochs) == 2 and len(run.recent_samples) == 1
    assert run.ended == "abruptly"


def test_writer_appends_whole_lines_and_reports_a_full_disk(tmp_path: Path) -> None:
    with TraceWriter(tmp_path / "sub" / "t.jsonl") as w:
        w.write(START)
        w.write({"type": "epoch", "run_id": "r1", "value": float("inf")})
    lines = (tmp_path / "sub" / "t.jsonl").read_bytes().splitlines()
    assert len(lines) == 2 and orjson.loads(lines[1])["value"] is None  # orjson: non-finite -> null
    if Path("/dev/full").exists():
        full = TraceWriter("/dev/full")
        with pytest.raises(OSError) as info:
            full.write(START)
        assert info.value.errno == errno.ENOSPC
        full.close()


def test_dirs_in_either_form_give_the_same_series() -> None:
    """Schema 2 writes `dirs` as a list; traces of schema 1 (a dict keyed by path) still read."""
    from epochwatch.analysis.series import EpochSeries
    from epochwatch.trace.schema import dir_entries, dirs_block

    totals = {
        "/ck": {"bytes": 10, "files": 1, "role": "checkpoint"},
        "/tmp": {"bytes": 5, "files": 2, "role": "temp"},
    }
    listed = dirs_block(totals)
    assert listed == [
        {"path": "/ck", "bytes": 10, "files": 1, "role": "checkpoint"},
        {"path": "/tmp", "bytes": 5, "files": 2, "role": "temp"},
    ]
    assert {p: e["bytes"] for p, e in dir_entries(listed)} == {p: e["bytes"] for p, e in dir_entries(totals)}
    assert list(dir_entries([{"bytes": 1}, "junk", {"path": 3}])) == []  # hostile entries are skipped
    old, new = EpochSeries(), EpochSeries()
    old.add_epoch({"type": "epoch", "epoch": 0, "seconds": 1.0, "dirs": totals})
    new.add_epoch({"type": "epoch", "epoch": 0, "seconds": 1.0, "dirs": listed})
    assert sorted(old.keys("dir_bytes")) == sorted(new.keys("dir_bytes")) == ["/ck", "/tmp"]
    assert old.value("dir_bytes", 0, "/ck") == new.value("dir_bytes", 0, "/ck") == 10
    assert old.dir_roles == new.dir_roles
