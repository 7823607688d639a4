"""`report`, `check` and `compare` on what is not a regular file: a FIFO nobody writes to,
/dev/zero. They hung (open of a FIFO) or spun forever (an endless device); only regular
files are traces, anything else is unusable input: exit 2 with one line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import synthetic as syn
from epochwatch.trace.reader import ReadStats, TraceError, iter_records
from tests.support import REPO


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "epochwatch", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "trace.jsonl"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", ["report", "check"])
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_a_special_file_is_refused_in_one_line(
    tmp_path: Path, fifo: Path, command: str, special: str
) -> None:
    path = str(fifo) if special == "fifo" else special
    proc = _cli(command, path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a regular file" in lines[0], proc.stderr


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_compare_refuses_a_special_file(tmp_path: Path, fifo: Path, special: str) -> None:
    good = syn.write(tmp_path / "good.jsonl", syn.trace(5, lambda i: {}, run_id="good"))
    path = str(fifo) if special == "fifo" else special
    proc = _cli("compare", str(good), path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "not a regular file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_directory_is_scanned_for_regular_files_only(tmp_path: Path, fifo: Path) -> None:
    syn.write(tmp_path / "good.jsonl", syn.trace(5, lambda i: {}, run_id="good"))
    proc = _cli("check", str(tmp_path))
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "1 run(s) checked" in proc.stdout


def test_a_huge_sparse_file_is_refused_by_its_size_before_reading(tmp_path: Path) -> None:
    """Issue 22: a 2 GB sparse file took 26-43 s to be refused."""
    path = tmp_path / "holes.jsonl"
    with path.open("wb") as fh:
        fh.truncate(2 << 30)
    t0 = time.monotonic()
    proc = _cli("check", str(path))
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "sparse file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_big_file_without_line_breaks_is_refused_early(tmp_path: Path) -> None:
    path = tmp_path / "blob.jsonl"
    with path.open("wb") as fh:
        for _ in range(80):
            fh.write(b"x" * (1 << 20))
    stats = ReadStats()
    with pytest.raises(TraceError, match="no line break"):
        list(iter_records(path, stats))
    assert stats.bytes_read < 70 << 20


def test_a_symlink_loop_is_named_as_such(tmp_path: Path) -> None:
    """Issue 22: a symlink loop was reported as "no such file"."""
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(loop)
    dangling = tmp_path / "gone.jsonl"
    dangling.symlink_to(tmp_path / "nowhere.jsonl")
    proc = _cli("check", str(loop), str(dangling))
    assert proc.returncode == 2
    assert "too many levels of symbolic links" in proc.stderr, proc.stderr
    assert "symbolic link to" in proc.stderr and "nowhere.jsonl" in proc.stderr, proc.stderr
    good = syn.write(tmp_path / "good.jsonl", syn.trace(5, lambda i: {}, run_id="good"))
    proc = _cli("compare", str(good), str(loop))
    assert proc.returncode == 2 and "too many levels of symbolic links" in proc.stderr, proc.stderr


@pytest.mark.parametrize("fmt", ["html", "json", "text"])
def test_an_output_file_is_escaped_as_stdout_is(tmp_path: Path, fmt: str) -> None:
    """Issue 22: `report --format html -o f.html` wrote raw ESC and U+202E (stdout did not);
    `--format json -o` left U+2028 and U+0085 raw."""
    nasty = "x\x1b[2J\u202e\u2028\x85y"
    trace = syn.write(tmp_path / "t.jsonl", syn.trace(5, lambda i: {}, run_id=f"run{nasty}"))
    out = tmp_path / f"out.{fmt}"
    proc = _cli("report", "--format", fmt, "-o", str(out), str(trace))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    for ch in "\x1b\u202e\u2028\x85":
        assert ch not in text, (fmt, repr(ch))
    stdout = _cli("report", "--format", fmt, str(trace)).stdout
    assert ("\\u001b" in text) == ("\\u001b" in stdout)
    compare_out = tmp_path / "cmp.txt"
    assert _cli("compare", "-o", str(compare_out), str(trace), str(trace)).returncode == 0
    assert not any(ch in compare_out.read_text(encoding="utf-8") for ch in "\x1b\u202e\u2028\x85")


def test_a_record_nested_1000_deep_costs_one_line_not_the_trace(tmp_path: Path) -> None:
    """audit13 #7: one finding whose title nests 1000 deep made `report` and `check` refuse the
    whole trace (RecursionError), and `compare` and `top --dir` die with a traceback."""
    trace = syn.write(tmp_path / "d" / "deep.jsonl", syn.trace(5, lambda i: {}, run_id="deep"))
    lines = trace.read_bytes().splitlines(keepends=True)
    deep = b'{"type":"finding","kind":"x","severity":"critical","title":' + b"[" * 1000 + b"]" * 1000 + b"}\n"
    trace.write_bytes(b"".join(lines[:3]) + deep + b"".join(lines[3:]))
    report = _cli("report", str(trace))
    assert report.returncode == 0 and "1 skipped" in report.stdout, (report.stdout, report.stderr)
    assert "5 epochs" in report.stdout and "findings  none" in report.stdout
    compare = _cli("compare", str(trace), str(trace))
    assert compare.returncode == 0 and "Epoch time" in compare.stdout, (compare.stdout, compare.stderr)
    top = _cli("top", "--once", "--dir", str(trace.parent))
    assert top.returncode == 0 and "deep" in top.stdout and "done" in top.stdout, (top.stdout, top.stderr)
    for proc in (report, compare, top):
        assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stdout + proc.stderr
