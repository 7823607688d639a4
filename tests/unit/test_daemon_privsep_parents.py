"""A restore's parent as the daemon reads it: the user's own trace in the daemon's traces
directory, with the user's rights, in bounded bytes, count and rate (daemon/parents.py)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from epochwatch.daemon import parents as P
from epochwatch.daemon.parents import DaemonParents, ParentLoader, TooBig, read_as
from tests.unit import restore_records as rr

NOBODY = 65534
ME = (os.getuid(), os.getgid())


def _write(
    traces: Path, run_id: str, extra: tuple[bytes, ...] | list[bytes] = (), owner: int | None = None
) -> Path:
    path = traces / f"{run_id}.jsonl"
    lines = [orjson.dumps(r) for r in rr.parent_records(run_id)] + list(extra)
    path.write_bytes(b"\n".join(lines) + b"\n")
    if owner is not None:
        os.chown(path, owner, owner)
    return path


def test_only_what_the_restore_checks_read_is_kept(tmp_path: Path) -> None:
    samples = [orjson.dumps({"type": "sample", "run_id": "p", "pad": "s" * 500})] * 2000
    notices = [orjson.dumps({"type": "notice", "run_id": "p", "message": "n"})] * 10
    _write(tmp_path, "p", samples + notices)
    run = read_as(tmp_path, "p", *ME)
    assert run is not None and run.start is not None
    assert len(run.epochs) == 5 and len(run.saves) == 1
    assert not run.recent_samples and run.notices == []  # read past, never held


def test_parents_over_a_bound_are_no_parents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "MAX_KEPT_BYTES", 4000)
    epochs = [orjson.dumps({"type": "epoch", "run_id": "p", "epoch": n, "pad": "e" * 200}) for n in range(30)]
    _write(tmp_path, "kept", epochs)
    with pytest.raises(TooBig, match="records to keep"):
        read_as(tmp_path, "kept", *ME)
    monkeypatch.setattr(P, "MAX_PARENT_BYTES", 2000)
    _write(tmp_path, "big", [b"x" * 3000])
    with pytest.raises(TooBig, match="over the limit"):  # refused by size before reading
        read_as(tmp_path, "big", *ME)
    monkeypatch.setattr(P, "MAX_LINE_BYTES", 100)
    monkeypatch.setattr(P, "MAX_PARENT_BYTES", 1 << 20)
    path = tmp_path / "long.jsonl"
    path.write_bytes(orjson.dumps(rr.parent_records("long")[0]) + b"\n")  # run_start over 100 bytes
    assert read_as(tmp_path, "long", *ME) is None  # skipped: no run_start, no parent


def test_only_a_trace_name_of_the_uids_own_is_followed(tmp_path: Path) -> None:
    loader = ParentLoader(tmp_path, lambda uid: None)
    _write(tmp_path, "mine")
    mine = DaemonParents(loader, *ME)
    assert mine.get(Path("/anywhere/else/mine.jsonl")) is not None  # by run id, in traces/
    assert mine.get(Path("/etc/passwd")) is None and mine.get(Path("../mine.jsonl.x")) is None
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "mine.jsonl")
    assert mine.get(Path("link.jsonl")) is None  # O_NOFOLLOW


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_uids_trace_and_a_root_only_file_are_not_read(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o711)
    _write(tmp_path, "roots")  # root's, 0644
    theirs = _write(tmp_path, "theirs", owner=NOBODY)
    os.chmod(theirs, 0o000)  # even their own file, unreadable to them, stays unread
    assert read_as(tmp_path, "roots", NOBODY, NOBODY) is None
    assert read_as(tmp_path, "theirs", NOBODY, NOBODY) is None
    os.chmod(theirs, 0o600)
    assert read_as(tmp_path, "theirs", NOBODY, NOBODY) is not None
    assert theirs.read_bytes()  # this thread is root again


def test_parents_held_and_reads_started_are_bounded_per_uid(tmp_path: Path) -> None:
    loaded: list[int] = []
    loader = ParentLoader(tmp_path, loaded.append)
    for n in range(12):
        _write(tmp_path, f"p{n}")
    for n in range(P.LOADS_PER_MINUTE):
        assert loader.peek(ME[0], ME[1], f"p{n}") is not None  # no event loop: read at once
    assert sum(1 for uid, _ in loader._held if uid == ME[0]) == P.PARENTS_PER_UID
    assert loader.peek(ME[0], ME[1], "p11") is None  # over the rate: not read this minute
    assert len(loaded) == P.LOADS_PER_MINUTE
