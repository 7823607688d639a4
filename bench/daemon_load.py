"""What the daemon costs the host: CPU share of one core and RSS with 1, 8 and 32 runs attached.

Starts a real `epochwatch daemon` (default config: every run sampled at 1 Hz, host-wide
contention scan every 5 s) and, for each load, that many light fake training processes:
each attaches through the real SocketSink and sends an epoch record (about 2 KB, shaped like
a Keras epoch) every few seconds. After the runs are attached and a short warm-up, the
daemon's CPU time and RSS are read from /proc for `--seconds` (default 60).

    python bench/daemon_load.py [--seconds 60] [--loads 1,8,32] [--epoch-seconds 3]

Targets (issue 4): under 1% of one core and under 80 MB RSS with 8 runs attached.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from harness import running_daemon

REPO = Path(__file__).resolve().parent.parent

FAKE = r"""
import os, sys, time
from epochwatch.trace import schema
from epochwatch.trace.sink import open_sink
period, stop = float(sys.argv[1]), sys.argv[2]
run = f"bench-{os.getpid()}"
sink = open_sink(run)
if "daemon" not in sink.description:
    sys.exit(f"not attached: {sink.description}")
sink.write(schema.record("run_start", run, schema=1, env={"script": "fake_train.py", "pid": os.getpid()}))
n = 0
while not os.path.exists(stop):
    t0 = time.time()
    time.sleep(period)
    sink.write(schema.record(
        "epoch", run, epoch=n, fit=0, source="keras", start=t0, end=time.time(), seconds=period,
        overhead_seconds=0.004, steps=100, batch_size=32, lr=0.001, iterations=100 * (n + 1),
        step_seconds={"min": 0.01, "median": 0.012, "p90": 0.015, "max": 0.05},
        metrics={"loss": 1.0 / (n + 1), "accuracy": 0.5 + n / 1000, "val_loss": 1.1 / (n + 1)},
        host={"rss_bytes": 900_000_000 + n, "threads": 40, "open_fds": 60, "cpu_seconds": period,
              "sys_available_bytes": 20_000_000_000, "sys_total_bytes": 32_000_000_000},
        retraces={"new": 0, "graph_build_seconds": 0.0, "live_concrete_functions": 4},
        dirs={"/tmp/ckpt": {"bytes": 1_000_000 * n, "files": n, "role": "checkpoint"}},
    ))
    n += 1
sink.write(schema.record("run_end", run, ended="completed", epochs=n))
sink.close()
"""


def _env(socket_path: Path, traces: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("EPOCHWATCH_", "NOTIFY_SOCKET", "WATCHDOG_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["EPOCHWATCH_SOCKET"] = str(socket_path)
    env["EPOCHWATCH_DIR"] = str(traces)
    return env


def _wait(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def measure(load: int, seconds: float, epoch_seconds: float, work: Path) -> dict[str, float]:
    """Run one daemon with `load` fake runs; returns the daemon's figures."""
    run_dir = work / f"load-{load}"
    run_dir.mkdir()
    log_path = run_dir / "daemon.log"
    fake = run_dir / "fake_train.py"
    fake.write_text(FAKE)
    stop = run_dir / "stop"
    fakes: list[subprocess.Popen[bytes]] = []
    with running_daemon(run_dir) as (sock, proc):
        env = _env(sock, run_dir / "embedded")
        try:
            for _ in range(load):
                fakes.append(
                    subprocess.Popen([sys.executable, str(fake), str(epoch_seconds), str(stop)], env=env)
                )
            _wait(lambda: log_path.read_text().count(" attached: pid ") >= load, 60, f"{load} runs to attach")
            time.sleep(max(5.0, 2 * epoch_seconds))  # warm-up: first samples, first contention scans
            cpu0 = sum(proc.cpu_times()[:2])
            t0 = time.monotonic()
            rss_max = 0
            while time.monotonic() - t0 < seconds:
                rss_max = max(rss_max, proc.memory_info().rss)
                time.sleep(1.0)
            elapsed = time.monotonic() - t0
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            rss_end = proc.memory_info().rss
            if any(f.poll() is not None for f in fakes):
                raise SystemExit("a fake run died during the measurement")
            stop.write_text("")
            for f in fakes:
                f.wait(30)
            _wait(lambda: log_path.read_text().count(" ended: completed") >= load, 30, "the runs to end")
        finally:
            for f in fakes:
                if f.poll() is None:
                    f.kill()
                    f.wait()
    # After the daemon's SIGTERM flush (running_daemon checks it exited 0).
    trace_bytes = sum(p.stat().st_size for p in (run_dir / "state" / "traces").glob("*.jsonl"))
    return {
        "load": load,
        "seconds": elapsed,
        "cpu_pct": 100.0 * cpu / elapsed,
        "rss_mb": rss_end / 1e6,
        "rss_max_mb": rss_max / 1e6,
        "trace_kb_per_run_min": trace_bytes / 1e3 / load / ((elapsed + 10) / 60),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement time per load (default 60)")
    parser.add_argument("--loads", default="1,8,32", help="numbers of attached runs (default 1,8,32)")
    parser.add_argument(
        "--epoch-seconds", type=float, default=3.0, help="seconds between epochs of a fake run"
    )
    args = parser.parse_args()
    loads = [int(x) for x in args.loads.split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="epochwatch-bench-"))
    print(
        f"epochwatch daemon load: {args.seconds:.0f} s per load, an epoch every {args.epoch_seconds:g} s per run,"
    )
    print(f"sampling at 1 Hz; {psutil.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'runs':>5} {'cpu % of a core':>16} {'rss MB':>8} {'rss max MB':>11} {'trace kB/run/min':>17}")
    results = []
    try:
        for load in loads:
            r = measure(load, args.seconds, args.epoch_seconds, work)
            results.append(r)
            print(
                f"{load:>5} {r['cpu_pct']:>16.2f} {r['rss_mb']:>8.1f} {r['rss_max_mb']:>11.1f}"
                f" {r['trace_kb_per_run_min']:>17.1f}",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    eight = next((r for r in results if r["load"] == 8), None)
    if eight is not None:
        ok = eight["cpu_pct"] < 1.0 and eight["rss_max_mb"] < 80.0
        print(f"targets at 8 runs (< 1% of a core, < 80 MB): {'met' if ok else 'MISSED'}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
