"""`epochwatch top` in a real terminal: tmux runs it in an 80x24 pane over a trace directory
while the test appends epochs; capture-pane must show the run and its epoch moving, a
terminal shrunk to 30x5 must get one line (not a traceback), and `q` must end it with
exit status 0. Skipped where tmux is not installed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import synthetic as syn
from epochwatch.trace.writer import dumps_line

REPO = Path(__file__).resolve().parents[2]
TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux)")


class Tmux:
    """A private tmux server (its own socket, no user config) with one session."""

    def __init__(self, tmp_path: Path) -> None:
        self.socket = f"ew-{uuid.uuid4().hex[:8]}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "EPOCHWATCH_"))}
        self.env.update(
            {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONPATH": str(REPO), "TERM": "xterm-256color"}
        )

    def __call__(self, *args: str, check: bool = True) -> str:
        assert TMUX is not None
        proc = subprocess.run(
            [TMUX, "-L", self.socket, "-f", os.devnull, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"tmux {args}: {proc.stderr}")
        return proc.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "top", check=False)

    def wait_for(self, what: Callable[[str], bool], timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if what(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"the screen never showed it; last screen:\n{text}")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path)
    try:
        yield t
    finally:
        t("kill-server", check=False)


def _epoch(run_id: str, i: int) -> bytes:
    rec = syn.epoch_record(
        run_id, i, syn.T0 + 10 * i, 2.0 + 0.1 * i, host=syn.host_block(syn.GIB + syn.MIB * i)
    )
    rec["metrics"] = {"loss": 1.0 / (i + 1)}
    return dumps_line(rec)


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


def test_top_follows_a_growing_trace_in_a_real_terminal(tmp_path: Path, tmux: Tmux) -> None:
    traces = tmp_path / "traces"
    traces.mkdir()
    trace = traces / "train-42.jsonl"
    start: dict[str, Any] = syn.run_start("train-42", epochs=50)
    start["env"]["pid"] = 4242
    _append(trace, dumps_line(start) + _epoch("train-42", 0) + _epoch("train-42", 1))
    rc_file = tmp_path / "rc"
    command = " ".join(
        shlex.quote(a)
        for a in (sys.executable, "-m", "epochwatch", "top", "--dir", str(traces), "--interval", "0.2")
    )
    tmux(
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "80",
        "-y",
        "24",
        f"{command}; echo $? > {shlex.quote(str(rc_file))}",
    )

    first = tmux.wait_for(lambda s: "train-42" in s and "2/50" in s)
    lines = first.splitlines()
    assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
    assert "RUN" in first and "EPOCH" in first and "TREND" in first and "4242" in first

    for i in range(2, 6):  # training goes on: top must pick the new bytes up
        _append(trace, _epoch("train-42", i))
        tmux.wait_for(lambda s, i=i: f"{i + 1}/50" in s)
    _append(trace, dumps_line({"type": "finding", "run_id": "train-42", "t": syn.T0 + 60, "kind": "slowdown",
                                "severity": "warning", "title": "epoch time grows 5% per epoch"}))  # fmt: skip
    shown = tmux.wait_for(lambda s: "open findings (1)" in s)
    assert "slowdown: epoch time grows 5% per epoch" in shown and "1 warn" in shown

    tmux("resize-window", "-t", "top", "-x", "30", "-y", "5")
    tiny = tmux.wait_for(lambda s: "too small" in s)
    assert "Traceback" not in tiny
    tmux("resize-window", "-t", "top", "-x", "80", "-y", "24")
    tmux.wait_for(lambda s: "6/50" in s)

    tmux("send-keys", "-t", "top", "q")
    deadline = time.monotonic() + 10
    while not rc_file.exists() or not rc_file.read_text().strip():
        assert time.monotonic() < deadline, f"top did not quit on q; screen:\n{tmux.screen()}"
        time.sleep(0.1)
    assert rc_file.read_text().strip() == "0"
