"""What every benchmark here shares: fresh child processes, a daemon, and the load around a figure.

Timings on a shared machine are only as good as what else ran at the same time, so each
measurement window is wrapped in a LoadMeter: the 1-minute load average, how many other
processes were busy (over 10% of a core) and how many cores everything outside this
benchmark used (from /proc/stat minus our own process tree). Those numbers go next to
every figure a benchmark prints, so a reader can tell a real regression from a neighbour's
test suite. Children run with a quiet, CPU-only TensorFlow and a private temp directory
(the hook watches the temp directory; other people's files there are not our cost).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent

# The same quiet, reproducible TensorFlow the test suite uses (tests/support.py).
TF_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONHASHSEED": "0",
    "KERAS_BACKEND": "tensorflow",
}

BUSY_SHARE = 0.10  # a process using more than this share of one core counts as busy


def child_env(work: Path, **extra: str) -> dict[str, str]:
    """Environment for a training child: embedded traces under work/traces, no daemon, own TMPDIR."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("EPOCHWATCH_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env.update(TF_ENV)
    tmp = work / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env["TMPDIR"] = str(tmp)
    env["EPOCHWATCH_DIR"] = str(work / "traces")
    env["EPOCHWATCH_SOCKET"] = str(work / "no-daemon.sock")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def run_json(
    cmd: Sequence[str], *, env: dict[str, str], cwd: Path | None = None, timeout: float = 600
) -> dict[str, Any]:
    """Run a child that prints one JSON object as its last stdout line; return that object."""
    proc = subprocess.run(
        list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(cmd[:4])}... exited {proc.returncode}\n--- stdout\n{proc.stdout[-2000:]}"
            f"\n--- stderr\n{proc.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- load around a measurement ---------------------------------------------------------------


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        fields = [float(v) for v in f.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return (total - idle) / ticks, total / ticks


def _cpu_by_pid() -> dict[int, float]:
    out: dict[int, float] = {}
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
    return out


def _own_tree() -> set[int]:
    me = psutil.Process()
    pids = {me.pid}
    with contextlib.suppress(psutil.Error):
        pids.update(c.pid for c in me.children(recursive=True))
    return pids


@dataclass(frozen=True)
class Load:
    """What else the machine did during one measurement window."""

    seconds: float
    loadavg_1m: float
    busy_processes: int  # other processes above BUSY_SHARE of a core during the window
    other_cores: float  # cores used by everything outside this benchmark's process tree

    def short(self) -> str:
        return f"load {self.loadavg_1m:.2f}, {self.busy_processes} busy, others {self.other_cores:.2f} cores"


class LoadMeter:
    """Wrap a measurement: `meter = LoadMeter()`, run it, `meter.stop()`."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._machine0 = _machine_busy()
        self._pids0 = _cpu_by_pid()
        self._self0 = time.process_time()
        self._children0 = _children_cpu()

    def stop(self) -> Load:
        elapsed = max(1e-9, time.monotonic() - self._t0)
        busy1, total1 = _machine_busy()
        pids1 = _cpu_by_pid()
        ours = _own_tree()
        cores = os.cpu_count() or 1
        wall_total = (total1 - self._machine0[1]) / cores  # the same clock as /proc/stat
        machine_cores = (busy1 - self._machine0[0]) / max(1e-9, wall_total)
        # Our own tree: this process, children reaped during the window, live descendants.
        own = (time.process_time() - self._self0) + (_children_cpu() - self._children0)
        own += sum(
            pids1[p] - self._pids0[p] for p in ours if p in pids1 and p in self._pids0 and p != os.getpid()
        )
        busy = 0
        for pid, cpu in pids1.items():
            if pid in ours:
                continue
            used = cpu - self._pids0.get(pid, 0.0)  # a process born in the window: all of it
            if used / elapsed > BUSY_SHARE:
                busy += 1
        return Load(
            seconds=elapsed,
            loadavg_1m=os.getloadavg()[0],
            busy_processes=busy,
            other_cores=max(0.0, machine_cores - own / elapsed),
        )


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def summarize_loads(loads: Sequence[Load]) -> str:
    """One line for many windows: medians and maxima."""
    if not loads:
        return "no load measured"
    la = [x.loadavg_1m for x in loads]
    bp = [x.busy_processes for x in loads]
    oc = [x.other_cores for x in loads]
    return (
        f"load average (1 min) median {statistics.median(la):.2f} max {max(la):.2f}; "
        f"other busy processes median {statistics.median(bp):g} max {max(bp)}; "
        f"cores used by others median {statistics.median(oc):.2f} max {max(oc):.2f}"
    )


# -- the machine ---------------------------------------------------------------------------


def _version(*names: str) -> str | None:
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return None


def machine() -> dict[str, Any]:
    """Where the figures came from (without importing TensorFlow)."""
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow", "tensorflow-cpu"),
        "keras": _version("keras"),
        "numpy": _version("numpy"),
        "mlflow": _version("mlflow"),
        "stormlog": _version("stormlog"),
        "epochwatch": _version("epochwatch"),
    }


def print_machine() -> dict[str, Any]:
    m = machine()
    print(
        f"machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"Python {m['python']}, TensorFlow {m['tensorflow']}, Keras {m['keras']}"
    )
    return m


# -- numbers -------------------------------------------------------------------------------


def spread(values: Sequence[float], fmt: str = ".3f") -> str:
    """median [min-max]"""
    if not values:
        return "-"
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def save_json(path: str | None, data: Any) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=1, default=lambda o: asdict(o)))
        print(f"raw results: {path}")


# -- a daemon for the benchmark ------------------------------------------------------------


@contextlib.contextmanager
def running_daemon(work: Path, *extra_args: str) -> Iterator[tuple[Path, psutil.Process]]:
    """`epochwatch daemon` on a private socket (plus `extra_args`); yields (socket path, its process)."""
    # A socket path must stay under ~107 bytes: keep it short, outside `work`.
    sock_dir = Path(tempfile.mkdtemp(prefix="ewb", dir="/tmp"))
    sock = sock_dir / "s.sock"
    log_path = work / "daemon.log"
    env = child_env(work)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "epochwatch",
                "daemon",
                "--socket",
                str(sock),
                "--state-dir",
                str(work / "state"),
                *extra_args,
            ],
            stdout=log,
            stderr=log,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while "listening on" not in log_path.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield sock, psutil.Process(proc.pid)
    finally:
        clean = proc.poll() is None
        if clean:
            proc.send_signal(signal.SIGTERM)
            try:
                clean = proc.wait(30) == 0
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                clean = False
        with contextlib.suppress(OSError):
            sock.unlink()
        with contextlib.suppress(OSError):
            sock_dir.rmdir()
    if not clean:  # SIGTERM must flush and exit 0; anything else is a finding of the benchmark
        raise RuntimeError(f"the daemon did not exit cleanly on SIGTERM; log in {log_path}")
