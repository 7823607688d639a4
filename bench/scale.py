"""epochwatch at scale: report over many traces and one huge trace, and the daemon with 64 runs.

1. `epochwatch report` over 1,000 traces of 100 epochs each (epoch records from
   bench/big_trace.py's generator: two GPUs, retraces, watched directories, a planted host
   leak, so every run has a finding), against a bare-reader baseline; `check` over the same;
   and, when `report` has a parallel mode (`--jobs`) or takes a glob, those too.
2. `epochwatch report` over one 1 GB daemon-style trace (bench/big_trace.py's `generate`):
   throughput in MB/s and the child's peak RSS, against the bare reader.
3. The daemon with 64 attached processes (bench/daemon_load.py's `measure`): its CPU share
   of a core and RSS, plus the sample lag, read from the traces it wrote: how far apart its
   1 Hz samples of each run really are, beyond the 1 s interval.
4. The daemon's Prometheus endpoint (`--metrics-port`) with the same 64 fake runs: how
   long a scrape takes, and how many series a run adds (what sizes a Prometheus server for a
   fleet; docs/metrics.md turns it into hosts per server).

Each command runs in a fresh process; peak RSS is that process's own (wait4), and for the
parallel mode also the sampled sum over its process tree. The load during each step is
printed with its figures.

    python bench/scale.py [--traces 1000] [--epochs 100] [--size-mb 1024] [--runs 64] [--seconds 60] [--scrapes 20] [--skip ...]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness
import orjson
import psutil

MIB = 1024**2


@dataclass
class Measured:
    name: str
    wall: float
    cpu: float
    peak_rss_mib: float
    tree_rss_mib: float
    rc: int
    load: harness.Load
    stderr: str = ""


def run_measured(name: str, cmd: list[str], ok: tuple[int, ...] = (0,)) -> Measured:
    """Run `cmd` (stdout discarded); wall, CPU and peak RSS of that process alone (wait4),
    and the peak total RSS of its process tree, sampled every 0.1 s (for worker pools)."""
    meter = harness.LoadMeter()
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        tree_peak = [0]
        done = threading.Event()

        def sample() -> None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(proc.pid)
                while not done.is_set():
                    total = 0
                    for p in [root, *root.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):
                            total += p.memory_info().rss
                    tree_peak[0] = max(tree_peak[0], total)
                    done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not earlier children's
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        load = meter.stop()
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    m = Measured(
        name,
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        tree_peak[0] / MIB,
        proc.returncode,
        load,
        stderr,
    )
    if m.rc not in ok:
        print(f"  {name}: exit {m.rc}: {stderr.strip()[-400:]}")
    return m


BASELINE = """
import sys
from pathlib import Path
from epochwatch.trace.reader import iter_records
n = 0
for arg in sys.argv[1:]:
    p = Path(arg)
    for f in sorted(p.glob("*.jsonl")) if p.is_dir() else [p]:
        for _ in iter_records(f):
            n += 1
print(n)
"""


def report_options() -> tuple[str | None, bool]:
    """(the report's parallel option, if it has one; whether its help mentions globs)."""
    out = subprocess.run(
        [sys.executable, "-m", "epochwatch", "report", "--help"], capture_output=True, text=True, check=False
    ).stdout
    option = next((o for o in ("--jobs", "--workers", "--parallel") if o in out), None)
    return option, "glob" in out.lower()


def many_traces(root: Path, traces: int, epochs: int) -> Path:
    """`traces` files of `epochs` epochs, from big_trace's epoch generator, each its own run."""
    import big_trace

    out = root / "many"
    out.mkdir()
    template = [big_trace._epoch(i, 1.8e9 + 60 * i) for i in range(epochs)]
    old = f'"run_id":"{big_trace.RUN_ID}"'.encode()
    for n in range(traces):
        run_id = f"run-{n:04d}"
        new = f'"run_id":"{run_id}"'.encode()
        start = {
            "type": "run_start", "run_id": run_id, "t": 1.8e9, "schema": 1, "epochwatch": "0.1.0",
            "mode": "embedded", "env": {"python": "3.11.7", "hostname": f"host-{n % 16}", "cpu_count": 32,
                                        "packages": {"tensorflow": "2.21.0", "keras": "3.15.0"}},
        }  # fmt: skip
        end = {
            "type": "run_end",
            "run_id": run_id,
            "t": 1.8e9 + 60 * epochs,
            "ended": "completed",
            "epochs": epochs,
        }
        with (out / f"{run_id}.jsonl").open("wb") as fh:
            fh.write(orjson.dumps(start) + b"\n")
            fh.write(b"".join(line.replace(old, new) for line in template))
            fh.write(orjson.dumps(end) + b"\n")
    return out


def size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.glob("*.jsonl")) / MIB
    return path.stat().st_size / MIB


def table(rows: list[Measured], mb: float, base: float, unit: str, count: float) -> None:
    print(f"| what | wall s | CPU s | MB/s | {unit}/s | x baseline | peak RSS MiB | tree RSS MiB | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r.name} | {r.wall:.1f} | {r.cpu:.1f} | {mb / r.wall:.0f} | {count / r.wall:.0f} | "
            f"{r.wall / base:.2f} | {r.peak_rss_mib:.0f} | {r.tree_rss_mib:.0f} | {r.load.short()} |"
        )


def step_many(root: Path, traces: int, epochs: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    d = many_traces(root, traces, epochs)
    mb = size_mb(d)
    print(
        f"\n1) {traces} traces x {epochs} epochs: {mb:.0f} MiB, generated in {time.perf_counter() - t0:.1f} s"
    )
    py = sys.executable
    rows = [
        run_measured("bare reader (baseline)", [py, "-c", BASELINE, str(d)]),
        run_measured("report --format json", [py, "-m", "epochwatch", "report", "--format", "json", "-o", os.devnull, str(d)]),
        run_measured("check", [py, "-m", "epochwatch", "check", str(d)], ok=(0, 1)),
    ]  # fmt: skip
    option, _ = report_options()
    notes = []
    if option:
        rows.append(
            run_measured(
                f"report --format json {option} 2",
                [py, "-m", "epochwatch", "report", "--format", "json", option, "2", "-o", os.devnull, str(d)],
            )
        )
    else:
        notes.append(
            "parallel mode: not in this epochwatch (`report --help` has no --jobs); measured serial only"
        )
    glob = run_measured(
        "report --format json 'DIR/*.jsonl' (a glob)",
        [py, "-m", "epochwatch", "report", "--format", "json", "-o", os.devnull, str(d / "*.jsonl")],
        ok=(0, 1, 2),
    )
    if glob.rc == 0:
        rows.append(glob)
    else:
        notes.append(
            f"a quoted glob as PATH: not supported yet (exit {glob.rc}: {glob.stderr.strip()[:120]})"
        )
    table(rows, mb, rows[0].wall, "runs", traces)
    for n in notes:
        print("  " + n)
    shutil.rmtree(d, ignore_errors=True)
    return {"traces": traces, "epochs": epochs, "mib": mb, "rows": rows, "notes": notes}


def step_big(root: Path, size: int) -> dict[str, Any]:
    import big_trace

    path = root / f"{big_trace.RUN_ID}.jsonl"
    t0 = time.perf_counter()
    epochs = big_trace.generate(path, size * MIB, 30)
    mb = size_mb(path)
    print(
        f"\n2) one trace of {mb:.0f} MiB ({epochs} epochs, 30 samples each), generated in {time.perf_counter() - t0:.1f} s"
    )
    py = sys.executable
    rows = [
        run_measured("bare reader (baseline)", [py, "-c", BASELINE, str(path)]),
        run_measured("report --format json", [py, "-m", "epochwatch", "report", "--format", "json", "-o", os.devnull, str(path)]),
    ]  # fmt: skip
    table(rows, mb, rows[0].wall, "epochs", epochs)
    path.unlink()
    return {"mib": mb, "epochs": epochs, "rows": rows}


def sample_lag(traces_dir: Path, interval: float) -> dict[str, float]:
    """How far apart consecutive 1 Hz samples of the same run are, beyond `interval` (s)."""
    from epochwatch.trace.reader import iter_records

    lags: list[float] = []
    for trace in traces_dir.glob("*.jsonl"):
        ts = [float(r["t"]) for r in iter_records(trace) if r.get("type") == "sample" and "samples" not in r]
        lags += [max(0.0, b - a - interval) for a, b in itertools.pairwise(ts)]
    if not lags:
        return {}
    lags.sort()
    return {
        "gaps": len(lags),
        "median_ms": 1e3 * statistics.median(lags),
        "p99_ms": 1e3 * lags[min(len(lags) - 1, int(0.99 * len(lags)))],
        "max_ms": 1e3 * lags[-1],
    }


def step_daemon(root: Path, runs: int, seconds: float, epoch_seconds: float) -> dict[str, Any]:
    try:
        import daemon_load
    except ImportError as exc:
        print(f"\n3) daemon with {runs} runs: bench/daemon_load.py is not available ({exc}); skipped")
        return {}
    print(
        f"\n3) the daemon with {runs} attached runs, {seconds:.0f} s measured (bench/daemon_load.py)",
        flush=True,
    )
    work = root / "daemon"
    work.mkdir()
    meter = harness.LoadMeter()
    r = daemon_load.measure(runs, seconds, epoch_seconds, work)
    load = meter.stop()
    lag = sample_lag(work / f"load-{runs}" / "state" / "traces", 1.0)
    print("| runs | daemon CPU % of a core | RSS MB | RSS max MB | sample lag median / p99 / max ms | load |")
    print("|---:|---:|---:|---:|---:|---|")
    lag_text = f"{lag['median_ms']:.0f} / {lag['p99_ms']:.0f} / {lag['max_ms']:.0f}" if lag else "-"
    print(
        f"| {runs} | {r['cpu_pct']:.2f} | {r['rss_mb']:.1f} | {r['rss_max_mb']:.1f} | {lag_text} | {load.short()} |"
    )
    if lag:
        print(f"  sample lag over {lag['gaps']:.0f} consecutive-sample gaps (gap minus the 1 s interval)")
    return {"runs": runs, "daemon": r, "lag": lag, "load": load}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(url: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = resp.read()
    return time.perf_counter() - t0, body


def step_scrape(root: Path, runs: int, epoch_seconds: float, scrapes: int) -> dict[str, Any]:
    """The daemon's Prometheus endpoint with `runs` attached (daemon_load's fake runs): how long
    a scrape takes and how many series a run adds, which is what sizes a Prometheus for a fleet."""
    try:
        import daemon_load
    except ImportError as exc:
        print(f"\n4) Prometheus scrape: bench/daemon_load.py is not available ({exc}); skipped")
        return {}
    work = root / "scrape"
    work.mkdir()
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    print(f"\n4) the daemon's Prometheus endpoint with {runs} attached runs, {scrapes} scrapes", flush=True)
    fake = work / "fake_train.py"
    fake.write_text(daemon_load.FAKE)
    stop = work / "stop"
    fakes: list[subprocess.Popen[bytes]] = []
    try:
        with harness.running_daemon(work, "--metrics-port", str(port)) as (sock, _):
            env = harness.child_env(work, EPOCHWATCH_SOCKET=str(sock))
            for _ in range(runs):
                fakes.append(
                    subprocess.Popen([sys.executable, str(fake), str(epoch_seconds), str(stop)], env=env)
                )
            deadline = time.monotonic() + 120
            want = f'epochwatch_daemon_runs{{state="connected"}} {runs}'.encode()
            while want not in _scrape(url)[1]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{runs} runs did not attach within 120 s")
                time.sleep(0.5)
            time.sleep(2 * epoch_seconds + 1)  # every run has epochs, so every series exists
            meter = harness.LoadMeter()
            timings, body = [], b""
            for _ in range(scrapes):
                took, body = _scrape(url)
                timings.append(took)
                time.sleep(0.2)
            load = meter.stop()
            stop.write_text("")
            for f in fakes:
                f.wait(60)
    finally:
        stop.write_text("")
        for f in fakes:
            if f.poll() is None:
                f.kill()
                f.wait()
    lines = [x for x in body.decode().splitlines() if x and not x.startswith("#")]
    per_run = [x for x in lines if x.startswith("epochwatch_") and 'run="' in x]
    result = {
        "runs": runs,
        "series": len(lines),
        "run_series": len(per_run),
        "series_per_run": len(per_run) / runs,
        "bytes": len(body),
        "median_ms": 1e3 * statistics.median(timings),
        "max_ms": 1e3 * max(timings),
        "load": load,
    }
    print("| runs | series | series per run | body kB | scrape median ms | max ms | load |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {runs} | {result['series']} | {result['series_per_run']:.1f} | {len(body) / 1e3:.0f} | "
        f"{result['median_ms']:.1f} | {result['max_ms']:.1f} | {load.short()} |"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--traces", type=int, default=1000, help="traces for the many-traces report (default 1000)"
    )
    p.add_argument("--epochs", type=int, default=100, help="epochs per trace (default 100)")
    p.add_argument("--size-mb", type=int, default=1024, help="size of the big trace (default 1024)")
    p.add_argument("--runs", type=int, default=64, help="runs attached to the daemon (default 64)")
    p.add_argument("--seconds", type=float, default=60.0, help="daemon measurement seconds (default 60)")
    p.add_argument("--epoch-seconds", type=float, default=3.0, help="seconds between a fake run's epochs")
    p.add_argument("--scrapes", type=int, default=20, help="Prometheus scrapes to time (default 20)")
    p.add_argument("--skip", default="", help="comma-separated steps to skip: many, big, daemon, scrape")
    p.add_argument("--json", metavar="FILE", help="also write the raw results here")
    a = p.parse_args(argv)
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    info = harness.print_machine()
    root = Path(tempfile.mkdtemp(prefix="epochwatch-scale-"))
    results: dict[str, Any] = {"machine": info, "args": vars(a)}
    t0 = time.monotonic()
    try:
        if "many" not in skip:
            results["many"] = step_many(root, a.traces, a.epochs)
        if "big" not in skip:
            results["big"] = step_big(root, a.size_mb)
        if "daemon" not in skip:
            results["daemon"] = step_daemon(root, a.runs, a.seconds, a.epoch_seconds)
        if "scrape" not in skip:
            results["scrape"] = step_scrape(root, a.runs, a.epoch_seconds, a.scrapes)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nfinished in {time.monotonic() - t0:.0f} s")
    harness.save_json(a.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
