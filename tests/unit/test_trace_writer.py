"""The trace writer on a full disk: a record is a whole line or nothing, never half of one.

A real full filesystem (a 64 KiB tmpfs mounted for the test, as root) and a real file
size limit (RLIMIT_FSIZE, in a child process) produce the short write and the ENOSPC /
EFBIG that follow it; nothing is simulated.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from epochwatch.daemon.store import TraceFile
from epochwatch.trace.reader import ReadStats, iter_records
from epochwatch.trace.writer import TraceWriter


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs under tmp_path, unmounted afterwards; skipped where mount is refused."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _record(n: int) -> dict[str, object]:
    return {"type": "epoch", "run_id": "r", "epoch": n, "pad": "x" * 900}


def _fill(writer: TraceWriter) -> tuple[int, OSError]:
    """Write records until the disk refuses one; returns (how many went in, the error)."""
    n = 0
    while True:
        try:
            writer.write(_record(n))
        except OSError as exc:
            return n, exc
        n += 1


def _check_whole_lines(path: Path, expected: list[int]) -> None:
    stats = ReadStats()
    epochs = [r["epoch"] for r in iter_records(path, stats)]
    assert stats.skipped == 0, stats.first_problems
    assert epochs == expected
    assert path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize("kind", ["embedded", "daemon"])
def test_a_full_disk_leaves_no_torn_line(full_disk: Path, kind: str) -> None:
    path = full_disk / "run.jsonl"
    if kind == "embedded":
        writer: TraceWriter = TraceWriter(path)
    else:
        writer = TraceFile.create(full_disk, "run", uid=0, mode=0o640)
        path = writer.path
    with writer:
        written, exc = _fill(writer)
        assert exc.errno in (errno.ENOSPC, errno.EFBIG)
        assert written > 10
        # The refused record left nothing behind: every line in the file is whole.
        _check_whole_lines(path, list(range(written)))
        with pytest.raises(OSError):
            writer.write(_record(written))  # still full: a second failure, still no torn line
    _check_whole_lines(path, list(range(written)))


def test_after_room_comes_back_the_retried_record_is_its_own_line(full_disk: Path) -> None:
    filler = full_disk / "filler"
    filler.write_bytes(b"f" * 16384)
    path = full_disk / "run.jsonl"
    with TraceWriter(path) as writer:
        written, _ = _fill(writer)
        filler.unlink()  # room again
        writer.write(_record(written))  # the retry of the record that failed
        writer.write(_record(written + 1))
    _check_whole_lines(path, list(range(written + 2)))


def test_a_file_size_limit_leaves_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    code = (
        "import signal, resource, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (10000, 10000))\n"
        "from epochwatch.trace.writer import TraceWriter\n"
        "w = TraceWriter(sys.argv[1])\n"
        "n = 0\n"
        "while True:\n"
        "    try:\n"
        "        w.write({'type': 'epoch', 'run_id': 'r', 'epoch': n, 'pad': 'x' * 900})\n"
        "    except OSError as exc:\n"
        "        print(n, exc.errno)\n"
        "        break\n"
        "    n += 1\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    written, code_ = map(int, out.stdout.split())
    assert code_ == errno.EFBIG
    _check_whole_lines(path, list(range(written)))


def test_a_trace_torn_by_a_crash_gets_a_newline_before_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_bytes(b'{"type":"epoch","run_id":"r","epoch":0}\n{"type":"epoch","run_id":"r","ep')
    with TraceWriter(path) as writer:
        writer.write({"type": "epoch", "run_id": "r", "epoch": 1})
    stats = ReadStats()
    epochs = [r["epoch"] for r in iter_records(path, stats)]
    assert epochs == [0, 1]
    assert stats.skipped == 1  # only the fragment the crash left


def test_embedded_traces_are_private_and_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with TraceWriter(tmp_path / "a.jsonl") as w:
            w.write({"type": "run_start", "run_id": "a"})
        os.umask(0o077)
        with TraceWriter(tmp_path / "b.jsonl") as w:
            w.write({"type": "run_start", "run_id": "b"})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "b.jsonl").stat().st_mode) == 0o600


def test_a_trace_cut_by_someone_else_loses_only_the_cut_record(tmp_path: Path) -> None:
    """Issue 22: cutting 15 bytes off a live trace lost the next record too (joined to the
    torn fragment, the reader skipped both)."""
    path = tmp_path / "t.jsonl"
    with TraceWriter(path) as writer:
        writer.write({"type": "run_start", "run_id": "r"})
        writer.write({"type": "epoch", "run_id": "r", "epoch": 0})
        os.truncate(path, path.stat().st_size - 15)
        writer.write({"type": "epoch", "run_id": "r", "epoch": 1})
        writer.write({"type": "epoch", "run_id": "r", "epoch": 2})
    stats = ReadStats()
    epochs = [r["epoch"] for r in iter_records(path, stats) if r["type"] == "epoch"]
    assert epochs == [1, 2] and stats.skipped == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_root_does_not_follow_a_planted_trace_directory_or_file(tmp_path: Path) -> None:
    """Issue 22: root running a script in another user's directory followed a planted
    `epochwatch-traces` symlink. The hook's traces are made with O_NOFOLLOW (the directory
    too) and O_EXCL, so neither a planted directory link nor a planted file link is used."""
    from epochwatch.trace.sink import FileSink
    from tests.integration.other_user import NOBODY, drop_to, shared_tmp

    with shared_tmp() as theirs:
        os.chown(theirs, NOBODY, NOBODY)
        target = tmp_path / "roots"
        target.mkdir()
        pid = os.fork()
        if pid == 0:  # uid 65534 plants the links in its own directory
            try:
                drop_to(NOBODY)
                (theirs / "epochwatch-traces").symlink_to(target)
                (theirs / "own").mkdir()
                (theirs / "own" / "run1.jsonl").symlink_to(target / "victim")
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        with pytest.raises(OSError, match="symbolic link"):
            FileSink(theirs / "epochwatch-traces", "run1")
        with pytest.raises(OSError):
            FileSink(theirs / "own", "run1")
        assert list(target.iterdir()) == []
