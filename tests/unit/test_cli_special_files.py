"""`report`, `check` and `compare` on what is not a regular file: a FIFO nobody writes to,
/dev/zero. They hung (open of a FIFO) or spun forever (an endless device); only regular
files are traces, anything else is unusable input: exit 2 with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import synthetic as syn
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
