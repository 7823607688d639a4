"""`epochwatch report` on a big trace: throughput and peak memory.

Generates a daemon-style trace of about --size-mb MB (default 1024) in a temporary
directory: a run_start, then per epoch SAMPLES 1 Hz `sample` records and one full
`epoch` record (host, two GPUs, TF allocator, retraces with causes, three watched
directories), with a planted host-memory leak so the analysis has something to find.
Then, each in a fresh subprocess:

- baseline: the bare reader (`iter_records` over the file, nothing kept);
- `epochwatch report --format json` and `--format text` (full analysis: every epoch
  folded into the compact series, offline replay of the detectors, rendering).

Prints MB/s and peak RSS (ru_maxrss of the child) for each, and the ratio to the
baseline. The report keeps whole epoch records only up to analysis/files.EPOCH_RECORDS;
the series hold every epoch at 8 bytes per value, so memory grows with the number of
epochs (slowly), not with the file size.

    python bench/big_trace.py [--size-mb 1024] [--samples 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

RUN_ID = "big-trace"
MIB = 1024**2
GIB = 1024**3


def _epoch(i: int, t: float) -> bytes:
    rss = 3 * GIB + 4 * MIB * i  # the planted leak
    fn: dict[str, object] = {}
    if i % 50 == 7:
        fn = {
            "predict": {
                "new": 1,
                "total": i // 50 + 1,
                "causes": [
                    {
                        "arg": "x",
                        "change": "shape",
                        "was": "TensorSpec(shape=[32, 128])",
                        "now": "TensorSpec(shape=[17, 128])",
                    }
                ],
            }
        }
    rec = {
        "type": "epoch",
        "run_id": RUN_ID,
        "t": t + 60,
        "epoch": i,
        "fit": 0,
        "source": "keras",
        "start": t,
        "end": t + 60,
        "seconds": 60.0 + (i % 7) * 0.3,
        "overhead_seconds": 0.004,
        "steps": 1000,
        "step_seconds": {"min": 0.05, "median": 0.06, "p90": 0.07, "max": 0.2},
        "val_seconds": 3.1,
        "metrics": {"loss": 1.0 / (1 + i), "val_loss": 1.1 / (1 + i), "accuracy": 0.9, "val_accuracy": 0.88},
        "lr": 0.001,
        "iterations": 1000 * (i + 1),
        "batch_size": 64,
        "host": {
            "rss_bytes": rss,
            "swap_bytes": 0,
            "cpu_user_seconds": 50.0 * i,
            "cpu_system_seconds": 3.0 * i,
            "cpu_seconds": 53.0,
            "threads": 60,
            "open_fds": 40,
            "sys_available_bytes": 100 * GIB,
            "sys_total_bytes": 256 * GIB,
            "sys_swap_used_bytes": 0,
        },
        "gpu": {
            "devices": [
                {
                    "index": d,
                    "name": "NVIDIA H100 80GB HBM3",
                    "uuid": f"GPU-{d}",
                    "memory_used_bytes": 79 * GIB,
                    "memory_total_bytes": 80 * GIB,
                    "process_memory_bytes": 78 * GIB,
                    "utilization_pct": 97,
                    "memory_utilization_pct": 60,
                    "temperature_c": 70,
                    "power_w": 650.0,
                    "throttle_reasons": [],
                }
                for d in range(2)
            ]
        },
        "tf_memory": {f"GPU:{d}": {"current_bytes": 20 * GIB, "peak_bytes": 30 * GIB} for d in range(2)},
        "retraces": {
            "new": 1 if fn else 0,
            "graph_build_seconds": 0.2 if fn else 0.0,
            "live_concrete_functions": 12,
            "functions": fn,
        },
        "dirs": {
            "/nonexistent/ckpt": {
                "bytes": 3 * GIB + (i % 3) * GIB,
                "files": 9 + 3 * (i % 3),
                "role": "checkpoint",
            },
            "/nonexistent/tb": {"bytes": 5 * MIB, "files": 4, "role": "tensorboard"},
            "/nonexistent/tmp": {"bytes": 0, "files": 0, "role": "temp"},
        },
    }
    return orjson.dumps(rec) + b"\n"


_SAMPLE = (
    b'{"type":"sample","run_id":"' + RUN_ID.encode() + b'","t":%.3f,"rss_bytes":%d,"cpu_pct":%.1f,'
    b'"threads":60,"open_fds":40,"io_read_bytes":%d,"io_write_bytes":%d,'
    b'"gpu":{"devices":[{"index":0,"memory_used_bytes":84825604096,"process_memory_bytes":83751862272,'
    b'"utilization_pct":97},{"index":1,"memory_used_bytes":84825604096,"process_memory_bytes":83751862272,'
    b'"utilization_pct":96}]},'
    b'"contention":{"host_cpu_pct":41.5,"cpu":[{"pid":1234,"name":"python","cpu_pct":99.0},'
    b'{"pid":99,"name":"kworker/3:1","cpu_pct":2.0}]}}\n'
)


def generate(path: Path, size: int, samples: int) -> int:
    """Write the trace; returns the number of epochs."""
    start = {
        "type": "run_start",
        "run_id": RUN_ID,
        "t": 1.8e9,
        "schema": 1,
        "epochwatch": "0.1.0",
        "mode": "daemon",
        "env": {
            "python": "3.11.7",
            "hostname": "bench",
            "cpu_count": 32,
            "memory_total_bytes": 256 * GIB,
            "packages": {"tensorflow": "2.21.0", "keras": "3.15.0"},
        },
    }
    t = 1.8e9
    i = 0
    with path.open("wb", buffering=8 * MIB) as fh:
        written = fh.write(orjson.dumps(start) + b"\n")
        while written < size:
            chunk = bytearray()
            for s in range(samples):
                rss = 3 * GIB + 4 * MIB * i + (s % 5) * MIB
                chunk += _SAMPLE % (t + 2 * s, rss, 99.0 + s % 3, 1000 * i, 500 * i)
            chunk += _epoch(i, t)
            written += fh.write(chunk)
            t += 60.0
            i += 1
        fh.write(
            orjson.dumps({"type": "run_end", "run_id": RUN_ID, "t": t, "ended": "completed", "epochs": i})
            + b"\n"
        )
    return i


BASELINE = """
import sys
from epochwatch.trace.reader import iter_records
n = 0
for _ in iter_records(sys.argv[1]):
    n += 1
print(n)
"""


# Runs a module (`-m name`) or a script file in the child and reports the child's own
# peak RSS at exit (RUSAGE_CHILDREN in the parent is a maximum over all children).
_MEASURED = """
import resource, runpy, sys
code = 0
try:
    if sys.argv[1] == "-m":
        sys.argv = sys.argv[2:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 0
finally:
    sys.stderr.write("\\nMAXRSS_KIB %d\\n" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(code)
"""


def measure(args: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Run `python <args>` in a child: (wall seconds, its peak RSS in MiB, the process)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED, *args], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t0
    peak = next(
        (
            int(line.split()[1])
            for line in reversed(proc.stderr.splitlines())
            if line.startswith("MAXRSS_KIB")
        ),
        0,
    )
    return wall, peak / 1024, proc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=int, default=1024)
    p.add_argument("--samples", type=int, default=30, help="1 Hz samples per epoch record")
    p.add_argument("--keep", help="write the trace here and keep it (default: a temporary directory)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="epochwatch-big-") as tmp:
        where = Path(a.keep) if a.keep else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"{RUN_ID}.jsonl"
        t0 = time.perf_counter()
        epochs = generate(path, a.size_mb * MIB, a.samples)
        size_mb = path.stat().st_size / MIB
        print(
            f"trace: {size_mb:.0f} MiB, {epochs} epochs, {epochs * a.samples} samples, "
            f"generated in {time.perf_counter() - t0:.1f} s ({path})"
        )
        baseline = where / "bare_reader.py"
        baseline.write_text(BASELINE)
        rows = []
        for name, args in (
            ("bare reader (baseline)", [str(baseline), str(path)]),
            (
                "report --format json",
                ["-m", "epochwatch", "report", "--format", "json", "--output", os.devnull, str(path)],
            ),
            ("report --format text", ["-m", "epochwatch", "report", str(path)]),
        ):
            wall, peak, proc = measure(args)
            if proc.returncode != 0:
                print(f"{name}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
                return 1
            rows.append((name, wall, peak))
            if name.endswith("text"):
                head = [
                    line
                    for line in proc.stdout.splitlines()
                    if line.startswith(("findings", "  INFO", "  WARNING", "  CRITICAL"))
                ]
                print("  " + "\n  ".join(head[:4]))
        base = rows[0][1]
        print()
        print("| what | wall s | MB/s | x baseline time | peak RSS MiB |")
        print("|---|---:|---:|---:|---:|")
        for name, wall, peak in rows:
            print(f"| {name} | {wall:.1f} | {size_mb / wall:.0f} | {wall / base:.2f} | {peak:.0f} |")
        json_rows = [r for r in rows if r[0] == "report --format json"]
        if json_rows:
            rate = size_mb / json_rows[0][1]
            verdict = "met" if rate >= 150 else "MISSED"
            print(f"\ntarget (issue 15): report >= 150 MB/s on this trace: {rate:.0f} MB/s: {verdict}")
        print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        if not a.keep:
            path.unlink()
        baseline.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
