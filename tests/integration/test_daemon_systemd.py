"""The systemd unit: `systemd-analyze verify` where the tool exists, and the settings the
daemon relies on."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

UNIT = REPO / "epochwatch" / "share" / "epochwatch.service"


def _settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_unit_has_what_the_daemon_relies_on() -> None:
    s = _settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] and s["Restart"] == ["on-failure"]
    assert s["RuntimeDirectory"] == ["epochwatch"] and s["StateDirectory"] == ["epochwatch"]
    assert "--socket /run/epochwatch/epochwatch.sock" in s["ExecStart"][0]
    assert "--state-dir /var/lib/epochwatch" in s["ExecStart"][0]
    # reading other users' process stats must stay possible
    assert s["ProtectProc"] == ["default"] and s["ProcSubset"] == ["all"]
    assert "CAP_SYS_PTRACE" in s["CapabilityBoundingSet"][0]
    # per-user workers drop to the user; users' files are opened with their fsuid, so root
    # needs no capability to read or write what a user cannot (docs/security.md)
    caps = s["CapabilityBoundingSet"][0].split()
    assert {"CAP_SETUID", "CAP_SETGID"} <= set(caps) and not {
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
    } & set(caps)
    allowed = s["SystemCallFilter"][-1].split()
    assert {"setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid", "prlimit64"} <= set(allowed)
    # the loop ahead of users' processes in its cgroup; the workers back at 0 (setpriority)
    assert int(s["Nice"][0]) < 0 and "setpriority" in allowed
    assert s.get("PrivateTmp", ["no"]) == ["no"] and s["ProtectHome"] == ["read-only"]
    assert "PrivateDevices" not in s  # NVML needs /dev/nvidia*


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd to run this check)")
    # verify checks that ExecStart's binary exists: point it at this checkout's interpreter.
    entry = Path(sys.executable).parent / "epochwatch"
    if not entry.exists():
        pytest.skip(f"no epochwatch entry point next to {sys.executable}")
    unit = tmp_path / "epochwatch.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/epochwatch", str(entry)))
    proc = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in proc.stderr.splitlines() if "epochwatch.service" in line]
    assert proc.returncode == 0 and not problems, proc.stderr
