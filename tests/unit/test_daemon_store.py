"""Trace files and run state on disk: daemon-made names, resume points, restart state."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from epochwatch.daemon.store import SessionState, TraceFile, hash_token, prepare_dirs
from epochwatch.daemon.takeback import TAIL_BYTES, read_tail


def test_names_are_sanitized_and_unique(tmp_path: Path) -> None:
    traces, sessions = prepare_dirs(tmp_path)
    assert (traces.stat().st_mode & 0o777, sessions.stat().st_mode & 0o777) == (0o711, 0o700)
    made = [
        TraceFile.create(traces, wanted, uid=os.getuid(), mode=0o640)
        for wanted in ("a", "a", "../../etc/passwd", "", "..")
    ]
    try:
        assert [t.run_id for t in made] == ["a", "a-2", "etc_passwd", "run", "run-2"]
        assert all(t.path.parent == traces for t in made)
        assert all(t.path.stat().st_mode & 0o777 == 0o640 for t in made)
    finally:
        for t in made:
            t.close()


def test_a_symlink_planted_under_a_name_is_not_followed(tmp_path: Path) -> None:
    traces, _ = prepare_dirs(tmp_path)
    target = tmp_path / "victim"
    target.write_text("keep")
    (traces / "x.jsonl").symlink_to(target)
    t = TraceFile.create(traces, "x", uid=os.getuid(), mode=0o640)
    t.write({"type": "run_start"})
    t.close()
    assert t.run_id == "x-2" and target.read_text() == "keep"
    with pytest.raises(OSError):
        TraceFile.reopen(traces / "x.jsonl")


def test_the_next_seq_comes_from_a_bounded_tail_and_the_mark(tmp_path: Path) -> None:
    traces, _ = prepare_dirs(tmp_path)
    state = SessionState("t", "h", os.getuid(), os.getgid(), 0, 0.0, 0.0)
    path = traces / "t.jsonl"
    assert read_tail(state, traces).next_seq() == 0  # no trace
    lines = [b'{"type":"run_start","seq":0}']
    lines += [b'{"type":"sample","pad":"%s"}' % (b"x" * 3000) for _ in range(100)]
    lines += [b'{"type":"epoch","seq":7}'] + [
        b'{"type":"sample","pad":"%s"}' % (b"y" * 3000) for _ in range(60)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n{torn")
    assert read_tail(state, traces).next_seq() == 8
    path.write_bytes(b'{"type":"run_start","seq":0}\n' + b'{"type":"sample"}\n' * 30000)
    tail = read_tail(state, traces)
    assert tail.next_seq() == 1 and tail.run_start is not None
    # grown past the tail (a user can grow their trace): only TAIL_BYTES are read, the mark says the rest
    with path.open("r+b") as fh:
        fh.truncate(TAIL_BYTES * 8)
        fh.seek(0, os.SEEK_END)
        fh.write(b'\n{"type":"sample"}\n')
    tail = read_tail(state, traces)
    assert tail.start >= TAIL_BYTES * 7 and tail.next_seq({"next_seq": 40}) == 40


def test_session_state_round_trip_and_bad_files(tmp_path: Path) -> None:
    _, sessions = prepare_dirs(tmp_path)
    state = SessionState("r1", hash_token("tok"), 1000, 1000, 42, 123.5, 1.0, "train.py")
    state.save(sessions)
    assert (sessions / "r1.json").stat().st_mode & 0o777 == 0o600
    (sessions / "broken.json").write_text("{not json")
    (sessions / "renamed.json").write_bytes((sessions / "r1.json").read_bytes())
    states, problems = SessionState.load_all(sessions)
    assert states == [state] and len(problems) == 2
    SessionState.remove(sessions, "r1")
    SessionState.remove(sessions, "r1")  # twice is fine
    assert not (sessions / "r1.json").exists()


def test_a_name_used_thousands_of_times_costs_a_few_tries(tmp_path: Path) -> None:
    """`x`, `x-2` ... `x-9`, then a random suffix: the name's earlier traces are not tried
    one by one on the event loop (10,000 of them had meant 10,000 opens, then a refusal)."""
    traces, _ = prepare_dirs(tmp_path)
    for n in range(1, 10_000):
        (traces / ("x.jsonl" if n == 1 else f"x-{n}.jsonl")).touch()
    made = [TraceFile.create(traces, "x", uid=os.getuid(), mode=0o640) for _ in range(3)]
    try:
        ids = [t.run_id for t in made]
        assert len(set(ids)) == 3 and all(re.fullmatch(r"x-[0-9a-f]{8}", i) for i in ids), ids
    finally:
        for t in made:
            t.close()
