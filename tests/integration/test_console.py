"""What the user sees on stderr while a real Keras fit trains (issue 14: the console).

A leaking fit says its finding once, while it trains (before the script's own line after
fit), in one short line naming the epoch as Keras counts it, and one closing line with the
command that opens the trace; EPOCHWATCH_QUIET=1 says neither; a
CPU-only run says nothing about NVML; under a daemon the finding comes back over the
socket and the closing line names the daemon's trace.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.daemon_harness import DaemonProc, base_env
from tests.support import LEAK_30, FinishedRun, child_env, run_python, trace_files

FINDING_LINE = re.compile(r"^epochwatch: (warning|critical) host_memory_growth at epoch ([1-9]\d*): .+$")


def _ours(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("epochwatch:")]


def test_a_leak_is_said_once_while_training_and_the_end_names_the_trace(leak_run: FinishedRun) -> None:
    proc = leak_run.proc  # tests.support.LEAK_30, shared with test_detection_tf
    lines = proc.stderr.splitlines()
    leak = [i for i, line in enumerate(lines) if FINDING_LINE.match(line)]
    assert len(leak) == 1, proc.stderr[-3000:]
    returned = lines.index("FIT RETURNED")
    assert leak[0] < returned  # said while training, not at the end
    (trace,) = trace_files(leak_run.root)
    closing = [line for line in lines[returned:] if line.startswith("epochwatch: 30 epochs")]
    assert len(closing) == 1, proc.stderr[-3000:]
    # The leak, and on a loaded machine perhaps a slowdown the load caused: counted, not said again.
    assert re.search(r"\b[12] (warning|critical)\b", closing[0])
    assert f"details: epochwatch report {trace.resolve()}" in closing[0]
    assert len(lines[leak[0]]) <= 160 and int(FINDING_LINE.match(lines[leak[0]])[2]) <= 30
    assert not [line for line in _ours(proc.stderr) if "GPU" in line or "NVML" in line]  # CPU-only: quiet


def test_quiet_says_nothing(tmp_path: Path) -> None:
    env = child_env(tmp_path, EPOCHWATCH_QUIET="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = run_python(LEAK_30, tmp_path, env=env)
    assert trace_files(tmp_path)  # still traced
    ours = _ours(proc.stderr)
    assert not [line for line in ours if "host_memory_growth" in line or "epochs," in line], ours


def test_under_a_daemon_its_finding_comes_back_and_the_end_names_its_trace(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path).start()
    try:
        env = base_env(
            EPOCHWATCH_SOCKET=str(d.socket),
            EPOCHWATCH_DIR=str(tmp_path / "traces"),
            XDG_CACHE_HOME=str(tmp_path / "cache"),
        )
        proc = run_python(LEAK_30, tmp_path, env=env)
        (daemon_trace,) = d.trace_files()
        lines = proc.stderr.splitlines()
        leak = [line for line in lines if FINDING_LINE.match(line)]
        assert len(leak) == 1, proc.stderr[-3000:]
        closing = [line for line in lines if line.startswith("epochwatch: 30 epochs")]
        assert len(closing) == 1 and str(daemon_trace) in closing[0], proc.stderr[-3000:]
        assert not trace_files(tmp_path)
    finally:
        d.cleanup()
