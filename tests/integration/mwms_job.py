"""A real 2-worker MultiWorkerMirroredStrategy job on localhost (tests/integration/mwms_worker.py
in two fresh interpreters, each with its TF_CONFIG), run to its end: its traces' directory.

test_distributed.py reads the job's report and `check`; test_prometheus_rules_real_job.py
replays the same traces through the shipped alert rules. Both read the `mwms_jobs` session
fixture (tests/integration/conftest.py: a straggling and a balanced job, each run once), and
both files are in one xdist group, so the two jobs run once per suite.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.support import child_env

WORKER = Path(__file__).with_name("mwms_worker.py")
# 26 epochs: the alert-rule replay plays one epoch a minute, and the straggler alert waits 15
# of them; worker 1 does DELAY s more of its own work per step from epoch SLOW_FROM on.
EPOCHS, STEPS, SLOW_FROM, DELAY = 26, 15, 3, 0.015


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def run_job(root: Path, slow_from: int, *, epochs: int = EPOCHS, mode: str = "loop") -> Path:
    """Both workers run to their end under `root` (slow_from -1: balanced); their traces' dir."""
    root.mkdir(parents=True, exist_ok=True)
    ports = ",".join(str(p) for p in _free_ports(2))
    env = child_env(root, **({"TF_USE_LEGACY_KERAS": "1"} if mode == "fit" else {}))
    args = [ports, str(epochs), str(STEPS), str(slow_from), str(DELAY), mode]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(i), *args],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=240)
            outputs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    # Every worker's end: a worker that died shows in its own output, while its peer only
    # says that it stopped sending heartbeats.
    ends = [
        f"worker {i}: rc {p.returncode}\n{out[-3000:]}"
        for i, (p, out) in enumerate(zip(procs, outputs, strict=True))
    ]
    assert all(p.returncode == 0 for p in procs), "\n".join(ends)
    return root / "traces"
