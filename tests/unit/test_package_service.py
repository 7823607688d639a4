"""`epochwatch service`: the shipped files print as they are, `install` writes a unit that systemd
accepts with this installation's ExecStart, and the example config loads with the daemon's loader."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from epochwatch.cli import main
from epochwatch.cli.service import (
    CONFIG_PATH,
    DROP_IN_PATH,
    FILES,
    SHARE,
    SYSUSERS_PATH,
    UNIT_PATH,
    entry_point,
    shipped,
)
from epochwatch.daemon.config import DaemonConfig, flatten, parse_config
from tests.support import REPO


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def _exec_start(unit: str) -> str:
    (line,) = [x for x in unit.splitlines() if x.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")


def test_every_shipped_file_exists_once_in_the_repository() -> None:
    """The package data is the only copy: no second unit, rules or dashboard elsewhere in the tree."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout (an unpacked sdist): nothing to compare with")
    for name in FILES.values():
        assert (SHARE / name).is_file(), name
        tracked = subprocess.run(
            ["git", "ls-files", f"*{name}"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.split()
        assert tracked == [f"epochwatch/share/{name}"], tracked
    assert not subprocess.run(["git", "ls-files", "systemd"], cwd=REPO, capture_output=True, text=True).stdout


@pytest.mark.parametrize("name", sorted(set(FILES) - {"unit"}))
def test_print_writes_the_shipped_file(name: str) -> None:
    code, out = _run("service", "print", name)
    assert code == 0 and out == shipped(name).read_text()


def test_print_unit_starts_this_installation() -> None:
    code, out = _run("service", "print", "unit")
    assert code == 0
    program, *args = _exec_start(out).split()
    assert program == entry_point().split()[0] and Path(program).is_absolute() and os.access(program, os.X_OK)
    assert args[:1] == ["daemon"] or args[:3] == ["-m", "epochwatch", "daemon"]
    assert "/usr/local/bin/epochwatch" not in out
    # everything but ExecStart is the shipped unit
    original = shipped("unit").read_text().splitlines()
    assert [x for x in out.splitlines() if not x.startswith("ExecStart=")] == [
        x for x in original if not x.startswith("ExecStart=")
    ]


def test_install_writes_the_files_and_keeps_an_existing_config(tmp_path: Path) -> None:
    code, out = _run("service", "install", "--prefix", str(tmp_path))
    assert code == 0
    for relative in (UNIT_PATH, SYSUSERS_PATH, CONFIG_PATH):
        target = tmp_path / relative
        assert f"wrote {target}" in out and target.stat().st_mode & 0o777 == 0o644
    assert not (tmp_path / DROP_IN_PATH).exists()
    assert (tmp_path / SYSUSERS_PATH).read_text() == shipped("sysusers").read_text()
    (tmp_path / CONFIG_PATH).write_text('socket_mode = "0660"\n')
    code, out = _run("service", "install", "--prefix", str(tmp_path), "--metrics")
    assert code == 0 and f"kept {tmp_path / CONFIG_PATH}" in out
    assert (tmp_path / CONFIG_PATH).read_text() == 'socket_mode = "0660"\n'
    assert (tmp_path / DROP_IN_PATH).read_text() == shipped("metrics").read_text()


def test_install_refuses_a_missing_prefix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["service", "install", "--prefix", str(tmp_path / "absent")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_install_leaves_a_masked_unit_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`systemctl mask` links the unit to /dev/null; writing over the link had unmasked it."""
    unit = tmp_path / UNIT_PATH
    unit.parent.mkdir(parents=True)
    unit.symlink_to(os.devnull)
    assert main(["service", "install", "--prefix", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is masked" in err and "systemctl unmask epochwatch" in err and err.count("\n") == 1, err
    assert os.readlink(unit) == os.devnull and not (tmp_path / SYSUSERS_PATH).exists()


def test_systemd_accepts_the_installed_unit_and_drop_in(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd to run this check)")
    assert _run("service", "install", "--prefix", str(tmp_path), "--metrics")[0] == 0
    units = tmp_path / "etc/systemd/system"
    proc = subprocess.run(
        [tool, "verify", str(units / "epochwatch.service")],
        capture_output=True,
        text=True,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{units}:"},
        timeout=60,
    )
    problems = [line for line in proc.stderr.splitlines() if "epochwatch" in line]
    assert proc.returncode == 0 and not problems, proc.stderr


def test_systemd_analyze_catches_a_missing_program(tmp_path: Path) -> None:
    """The verify above is not a rubber stamp: an ExecStart that does not exist fails it."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = tmp_path / "epochwatch.service"
    unit.write_text(shipped("unit").read_text().replace("/usr/local/bin/epochwatch", "/nonexistent/ew"))
    proc = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 or "/nonexistent/ew" in proc.stderr


def _uncommented(text: str) -> str:
    """The example config with every setting and table turned on."""
    return re.sub(r"^# (\[\w+\]|\w+ = )", r"\1", text, flags=re.M)


def test_example_config_loads_and_shows_every_default() -> None:
    text = shipped("config").read_text()
    assert parse_config(text, "daemon.toml") == DaemonConfig()  # all commented out: the defaults
    shown = parse_config(_uncommented(text), "daemon.toml (uncommented)")
    # every setting is there with its default (socket_group has none: the example names the group)
    assert dataclasses.replace(shown, socket_group=None) == DaemonConfig() and shown.socket_group
    named = set(re.findall(r"^# (\w+) = ", text, re.M))
    assert named == {key.rpartition(".")[2] for key in flatten(DaemonConfig())}


def test_a_line_appended_to_the_example_config_is_top_level() -> None:
    cfg = parse_config(shipped("config").read_text() + "metrics_port = 9464\n", "daemon.toml")
    assert cfg.metrics_port == 9464


def test_entry_point_falls_back_to_the_interpreter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(tmp_path))
    assert entry_point() == f"{sys.executable} -m epochwatch"
    (tmp_path / "epochwatch").write_text("#!/bin/sh\n")
    (tmp_path / "epochwatch").chmod(0o755)
    assert entry_point() == str(tmp_path / "epochwatch")
