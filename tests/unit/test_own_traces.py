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
    index.scan()
    assert index.names(uid) == ["new.jsonl", "old.jsonl"]
    assert index.names(uid, exclude="new.jsonl") == ["old.jsonl"]
    assert index.names(uid + 1) == []  # another uid: nothing of this one's
    index.add(uid + 1, "theirs.jsonl")
    assert index.names(uid + 1) == ["theirs.jsonl"] and "theirs.jsonl" not in index.names(uid)


def test_a_uid_keeps_its_newest_names_only(tmp_path: Path) -> None:
    index = OwnTraces(tmp_path / "missing")
    index.scan()  # nothing there yet (a fresh state directory): nothing known, nothing raised
    for n in range(owntraces.MAX_NAMES + 5):
        index.add(7, f"run-{n}.jsonl", mtime=float(n))
    names = index.names(7)
    assert len(names) == owntraces.MAX_NAMES and names[0] == f"run-{owntraces.MAX_NAMES + 4}.jsonl"
    assert "run-4.jsonl" not in names and "run-5.jsonl" in names
