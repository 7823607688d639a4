"""A real Keras fit with `verbose=1` on a pseudo-terminal (issue 26: a clean console).

Keras redraws its progress bar with '\\b', '\\r' and ANSI colours; a finding line that
arrives mid-epoch (online detection and the daemon's socket are other threads) must not
land inside it. The raw bytes of the terminal are read as a user's terminal shows them:
every finding line starts at column 0 after a complete line, is at most 160 characters,
has no '\\r' or escape inside, and names the epoch Keras printed last (its `Epoch n/N`
header). Embedded, and under a real daemon whose findings come back over its socket.
"""

from __future__ import annotations

import os
import re
import select
import textwrap
import time
from pathlib import Path

import pytest

from tests.integration.daemon_harness import DaemonProc, base_env
from tests.support import start_python

LEAK = """
import epochwatch.hook
import numpy as np
import keras

np.random.seed(0)
x = np.random.rand(512, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mse")

class KeepEverything(keras.callbacks.Callback):
    kept = []
    def on_epoch_end(self, epoch, logs=None):
        self.kept.append(np.full(3_000_000, float(epoch)))  # 24 MB a epoch, never freed

model.fit(x, y, epochs=30, batch_size=16, verbose=1, callbacks=[KeepEverything()])
print("FIT RETURNED", flush=True)
"""

FINDING = re.compile(r"epochwatch: (info|warning|critical) (\w+)(?: at epoch (\d+))?(?: \(update\))?: ")
HEADER = re.compile(r"Epoch (\d+)/30")


def _on_a_terminal(script: Path, env: dict[str, str], cwd: Path, timeout: float = 400) -> str:
    """Run `python script` with stdin, stdout and stderr on one pseudo-terminal (forked from
    the zygote where that is the same process: support.start_python); its raw output."""
    master, slave = os.openpty()
    try:
        proc = start_python(script, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave)
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: every end of the terminal's other side is closed
                break
            if not data:
                break
            chunks.append(data)
        else:
            proc.kill()
            raise AssertionError(f"timed out: {b''.join(chunks)[-3000:]!r}")
        assert proc.wait(timeout=60) == 0, b"".join(chunks)[-4000:]
    finally:
        os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def _check_findings(out: str) -> list[re.Match[str]]:
    found = list(FINDING.finditer(out))
    for m in found:
        start = m.start()
        end = out.index("\n", start)
        line = out[start:end].removesuffix("\r")
        assert out[start - 1] == "\n", f"not at column 0 after a complete line: {out[start - 300 : end]!r}"
        assert not set(line) & {"\r", "\b", "\x1b"}, repr(line)
        assert len(line) <= 160, (len(line), line)
        headers = HEADER.findall(out, 0, start)  # what Keras printed so far
        # The epoch its numbers are from, as report names it: one Keras has printed already.
        said = int(m[3]) if m[3] is not None else None
        assert said is None or (headers and 1 <= said <= int(headers[-1])), (line, headers[-3:])
    assert "host_memory_growth" in {m[2] for m in found}, out[-4000:]
    return found


def test_embedded_findings_never_land_inside_the_progress_bar(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(LEAK))
    env = base_env(
        EPOCHWATCH_DIR=str(tmp_path / "traces"),
        EPOCHWATCH_SOCKET=str(tmp_path / "no.sock"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    out = _on_a_terminal(script, env, tmp_path)
    _check_findings(out)
    (trace,) = (tmp_path / "traces").glob("*.jsonl")
    assert re.search(rf"\nepochwatch: 30 epochs, .*; details: epochwatch report {re.escape(str(trace))}", out)


def test_a_daemons_findings_wait_for_the_epoch_boundary(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path).start()
    try:
        script = tmp_path / "train.py"
        script.write_text(textwrap.dedent(LEAK))
        env = base_env(
            EPOCHWATCH_SOCKET=str(d.socket),
            EPOCHWATCH_DIR=str(tmp_path / "traces"),
            XDG_CACHE_HOME=str(tmp_path / "cache"),
        )
        out = _on_a_terminal(script, env, tmp_path)
        _check_findings(out)
        (daemon_trace,) = d.trace_files()
        assert f"details: epochwatch report {daemon_trace}" in out
        assert not (tmp_path / "traces").exists() or not list((tmp_path / "traces").glob("*.jsonl"))
    finally:
        d.cleanup()


@pytest.mark.parametrize("quiet", ["bogus"])
def test_an_unknown_quiet_value_and_an_unwritable_dir_are_said(tmp_path: Path, quiet: str) -> None:
    locked = tmp_path / "a-file"  # unwritable for root too: a directory under a file
    locked.write_text("")
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(LEAK).replace("epochs=30", "epochs=2").replace("KeepEverything()", ""))
    env = base_env(
        EPOCHWATCH_DIR=str(locked / "traces"),
        EPOCHWATCH_SOCKET=str(tmp_path / "no.sock"),
        EPOCHWATCH_QUIET=quiet,
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    out = _on_a_terminal(script, env, tmp_path)
    lines = [ln.removesuffix("\r") for ln in out.split("\n") if ln.startswith("epochwatch: ")]
    assert sum("EPOCHWATCH_QUIET='bogus' is not a setting" in ln for ln in lines) == 1, lines
    closing = lines[-1]
    assert closing.startswith("epochwatch: nothing was traced or checked: ") and "epochs" not in closing, (
        lines
    )
