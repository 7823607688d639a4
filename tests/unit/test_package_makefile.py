"""`make demo` installs what the demo needs (epochwatch with CPU TensorFlow), not the dev tools;
`make test` after it adds only the dev extra. Read from `make -n` (nothing is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import REPO


def _plan(target: str, venv: Path) -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed here")
    proc = subprocess.run(
        ["make", "-n", "-C", str(REPO), target, f"VENV={venv}"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if "pip install" in line]


def _stamp(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    later = time.time() + 60  # newer than pyproject.toml, whatever the checkout's mtimes
    os.utime(path, (later, later))


def test_demo_on_a_clean_clone_installs_the_cpu_extra_only(tmp_path: Path) -> None:
    installs = _plan("demo", tmp_path / "venv")
    assert any("-e '.[cpu]'" in line for line in installs), installs
    assert not [line for line in installs if "dev" in line or "tf-keras" in line], installs


def test_test_after_demo_adds_the_dev_extra_only(tmp_path: Path) -> None:
    _stamp(tmp_path / "venv" / ".demo-installed")
    installs = _plan("setup", tmp_path / "venv")
    assert any("'.[cpu,dev]'" in line for line in installs), installs
    assert not [line for line in installs if "'.[cpu]'" in line or "--upgrade pip" in line], installs
    assert _plan("demo", tmp_path / "venv") == []  # the demo again: nothing to install


def test_test_on_a_clean_clone_installs_everything(tmp_path: Path) -> None:
    installs = _plan("test", tmp_path / "venv")
    assert any("'.[cpu]'" in line for line in installs) and any("'.[cpu,dev]'" in line for line in installs)
