"""Helpers for tests that run real training in a fresh Python process.

The hook patches process-wide state (Keras' fit, TF's tracing), so each traced training
runs in its own interpreter, as it would for a user.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from epochwatch.analysis.ledger import Ledger
from epochwatch.trace.reader import iter_records

REPO = Path(__file__).resolve().parent.parent

# Quiet, CPU-only, reproducible TensorFlow for every child process.
TF_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONHASHSEED": "0",
    "KERAS_BACKEND": "tensorflow",
}


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a child: traces into tmp_path/traces, no daemon unless a test sets one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHWATCH_")}
    env.update(TF_ENV)
    env["EPOCHWATCH_DIR"] = str(tmp_path / "traces")
    env["EPOCHWATCH_SOCKET"] = str(tmp_path / "no-daemon.sock")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def run_python(
    code: str, tmp_path: Path, *, env: dict[str, str] | None = None, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `code` (dedented) as a script file in a fresh interpreter; returns the finished process."""
    script = tmp_path / "train_script.py"
    script.write_text(textwrap.dedent(code))
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env if env is not None else child_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"script exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-8000:]}"
        )
    return proc


def trace_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "traces").glob("*.jsonl"))


def read_single_trace(tmp_path: Path) -> list[dict[str, Any]]:
    files = trace_files(tmp_path)
    assert len(files) == 1, f"expected one trace, found {files}"
    return list(iter_records(files[0]))


def of_type(records: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == type_]


def latest_findings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each finding as last reported (a `finding_update` replaces what it updates), in the
    order first found: what `epochwatch report` and `hook.findings()` show (the ledger's fold)."""
    return Ledger(r for r in records if r["type"] in ("finding", "finding_update")).records()
