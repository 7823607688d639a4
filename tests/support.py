"""Helpers shared by the suite: fresh interpreters for real training, the tiny Keras script
every detection test starts from, the `epochwatch` CLI as a user runs it, and waiting for a
condition with a deadline (never a fixed sleep: a loaded machine is slow, not wrong).

The hook patches process-wide state (Keras' fit, TF's tracing), so each traced training
runs in its own interpreter, as it would for a user.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from epochwatch.analysis.ledger import Ledger
from epochwatch.trace.reader import iter_records
from tests import zygote_client as zygote

if TYPE_CHECKING:
    from epochwatch.analysis.findings import Finding

REPO = Path(__file__).resolve().parent.parent

# Quiet, CPU-only, reproducible TensorFlow for every child process.
TF_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONHASHSEED": "0",
    "KERAS_BACKEND": "tensorflow",
}

# The tiny Keras fit most detection tests start from: 256 examples of 8 features, two Dense
# layers, ~0.05 s an epoch on a CPU. A script appends its callbacks and its `model.fit`.
TINY_KERAS = """
import os, sys, time
import epochwatch.hook
import numpy as np
import keras

np.random.seed(0)
x = np.random.rand(256, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mse")
"""

# A callback that leaks 24 MB an epoch (host_memory_growth), for TINY_KERAS scripts.
KEEP_EVERYTHING = """
class KeepEverything(keras.callbacks.Callback):
    kept = []
    def on_epoch_end(self, epoch, logs=None):
        self.kept.append(np.full(3_000_000, float(epoch)))  # 24 MB an epoch, never freed
"""

# Thirty epochs of that leak: one run that the detection and the console tests both read
# (the `leak_run` fixture). The line after fit shows what stderr said while it trained.
LEAK_30 = (
    TINY_KERAS
    + KEEP_EVERYTHING
    + """
model.fit(x, y, epochs=30, batch_size=64, verbose=0, callbacks=[KeepEverything()])
print("FIT RETURNED", file=sys.stderr, flush=True)
"""
)


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment for a child: traces into tmp_path/traces, no daemon unless a test sets one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHWATCH_")}
    env.update(TF_ENV)
    env["EPOCHWATCH_DIR"] = str(tmp_path / "traces")
    env["EPOCHWATCH_SOCKET"] = str(tmp_path / "no-daemon.sock")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def private_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """child_env with a private temp dir: the temp dir is watched by default, and other
    tests' (and other processes') files there must not show in this run's trace."""
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir(exist_ok=True)
    return child_env(tmp_path, TMPDIR=str(private_tmp), **extra)


def run_python(
    code: str, tmp_path: Path, *, env: dict[str, str] | None = None, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `code` (dedented) as a script file in a fresh interpreter (forked from the
    suite's TensorFlow zygote where that is the same process: tests/zygote.py); returns
    the finished process."""
    script = tmp_path / "train_script.py"
    source = textwrap.dedent(code)
    script.write_text(source)
    env = env if env is not None else child_env(tmp_path)
    if zygote.can_run(source, env):
        proc = zygote.run(script, cwd=tmp_path, env=env, timeout=timeout)
    else:
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"script exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-8000:]}"
        )
    return proc


def start_python(
    script: Path, *args: str, cwd: Path, env: dict[str, str], **stdio: int | None
) -> subprocess.Popen[str] | zygote.Process:
    """`python script *args` started, with Popen's stdio arguments (stdin, stdout, stderr) and
    text pipes: forked from the zygote where that is the same process (run_python's rule),
    for the tests that talk to a script while it runs."""
    if zygote.can_run(script.read_text(), env):
        return zygote.Process([str(script), *args], cwd=cwd, env=env, **stdio)
    return subprocess.Popen([sys.executable, str(script), *args], cwd=cwd, env=env, text=True, **stdio)  # type: ignore[call-overload]


def epochwatch_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m epochwatch ARGS` as a user runs it; returns the finished process (no check)."""
    return subprocess.run(
        [sys.executable, "-m", "epochwatch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def report_json(path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """`epochwatch report --format json PATH` (a trace or a directory of them), parsed."""
    out = epochwatch_cli("report", "--format", "json", str(path), env=env)
    assert out.returncode == 0, out.stderr
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def wait_until(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `cond` until it is true; fail after `timeout` seconds, naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


def metric_samples(text: str) -> dict[str, list[Any]]:
    """Prometheus exposition text, read with prometheus-client's own parser: samples by name."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def analyze_records(
    records: list[dict[str, Any]], kind: str | None = None, *, episodes: bool = False
) -> list[Finding]:
    """The offline analysis of `records` as one run (what `epochwatch report` finds), of
    one `kind` when given; each finding as first reported, or as last (`episodes`: what
    `report` shows)."""
    from epochwatch.analysis.engine import analyze  # here: the daemon tests need no analysis
    from epochwatch.analysis.run import Run

    run = Run("t")
    for r in records:
        run.add(r)
    return [f for f in analyze(run, episodes=episodes) if kind is None or f.kind == kind]


@dataclass(frozen=True)
class FinishedRun:
    """A script that ran to its end: its working directory (traces under `root/traces`)
    and its finished process."""

    root: Path
    proc: subprocess.CompletedProcess[str]

    def records(self) -> list[dict[str, Any]]:
        return read_single_trace(self.root)


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


def rss_mib() -> float:
    """This process's RSS in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class FreedHeap:
    """What a profiler's read or TF's reading of a checkpoint leaves: blocks taken from glibc's
    heap and freed but the last, resident pages glibc keeps. `leave()` does it once more and
    returns how much RSS rose; `close()` frees the last blocks."""

    def __init__(self, blocks: int = 40_000) -> None:
        import ctypes
        import ctypes.util

        self._ctypes = ctypes
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"))
        self._libc.malloc.restype = ctypes.c_void_p
        self._libc.free.argtypes = [ctypes.c_void_p]
        self._blocks = blocks
        self._kept: list[int] = []

    def leave(self) -> float:
        before = rss_mib()
        blocks = [self._libc.malloc(4096) for _ in range(self._blocks)]
        for b in blocks:
            self._ctypes.memset(b, 1, 4096)
        for b in blocks[:-1]:
            self._libc.free(b)
        self._kept.append(blocks[-1])
        return rss_mib() - before

    def close(self) -> None:
        for b in self._kept:
            self._libc.free(b)
        self._kept.clear()
