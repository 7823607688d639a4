"""The daemon's index of whose traces are in its 0711 `traces/` (daemon/owntraces.py)."""

from __future__ import annotations

import os
from pathlib import Path

from epochwatch.daemon import owntraces
from epochwatch.daemon.owntraces import OwnTraces


def test_a_uid_is_told_its_regular_trace_files_newest_first(tmp_path: Path) -> None:
    uid = os.getuid()
    for n, name in enumerate(["old.jsonl", "new.jsonl", "notes.txt"]):
        (tmp_path / name).write_text("{}\n")
        os.utime(tmp_path / name, (1000.0 + n, 1000.0 + n))
    (tmp_path / "planted.jsonl").symlink_to(tmp_path / "old.jsonl")  # a link is no trace of anyone's
    (tmp_path / "dir.jsonl").mkdir()
    index = OwnTraces(tmp_path)
    index.scan(wait=True)
    assert index.count(uid) == 2
    assert index.names(uid) == ["new.jsonl", "old.jsonl"]
    assert index.names(uid, exclude="new.jsonl") == ["old.jsonl"]
    assert index.names(uid + 1) == []  # another uid: nothing of this one's
    index.add(uid + 1, "theirs.jsonl")
    assert index.names(uid + 1) == ["theirs.jsonl"] and "theirs.jsonl" not in index.names(uid)


def test_a_uid_keeps_its_newest_names_only(tmp_path: Path) -> None:
    index = OwnTraces(tmp_path / "missing")
    index.scan(wait=True)  # nothing there yet (a fresh state directory): nothing known, nothing raised
    for n in range(owntraces.MAX_NAMES + 5):
        index.add(7, f"run-{n}.jsonl", mtime=float(n))
    names = index.names(7)
    assert len(names) == owntraces.MAX_NAMES and names[0] == f"run-{owntraces.MAX_NAMES + 4}.jsonl"
    assert "run-4.jsonl" not in names and "run-5.jsonl" in names
    assert index.count(7) == owntraces.MAX_NAMES + 5  # counted all, named the newest
    index.remove(7, names[0])
    assert names[0] not in index.names(7) and index.count(7) == owntraces.MAX_NAMES + 4


def test_the_start_scan_keeps_the_newest_names_without_holding_every_one(tmp_path: Path) -> None:
    """Audit: the scan held every name of every uid before keeping the newest (154 B a trace:
    3 M traces would not fit the unit's 512M)."""
    for n in range(owntraces.MAX_NAMES + 50):
        (tmp_path / f"t{n}.jsonl").write_text("")
        os.utime(tmp_path / f"t{n}.jsonl", (1000.0 + n, 1000.0 + n))
    index = OwnTraces(tmp_path)
    index.add(os.getuid(), "made-while-scanning.jsonl", mtime=5000.0)
    index.scan(wait=True)
    names = index.names(os.getuid())
    assert names[0] == "made-while-scanning.jsonl" and len(names) == owntraces.MAX_NAMES
    assert f"t{owntraces.MAX_NAMES + 49}.jsonl" in names and "t0.jsonl" not in names
