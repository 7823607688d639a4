"""The hook's own memory footprint in a loop of fits on fresh large arrays (issue 23).

Two processes side by side in one run, the same script: one plain, one with
`import epochwatch.hook`. Each fits a small model `--fits` times, each time on freshly
allocated arrays (`--mb` MB of float32 inputs), and reads its RSS after every fit. The
figure is the Theil-Sen slope of RSS per fit over the fits after the first `--skip`
(allocator and TF warm-up), for each process, and their difference: what the hook keeps
per fit. The hooked process also prints what the hook says it holds (`hook_bytes`, from
its trace's fit_end records).

    python bench/fit_footprint.py [--fits 60] [--mb 12.8] [--skip 10] [--batch 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from epochwatch.analysis import trend  # noqa: E402
from epochwatch.trace.reader import iter_records  # noqa: E402

CHILD = textwrap.dedent(
    """
    import json, os, sys
    if os.environ.get("HOOKED") == "1":
        import epochwatch.hook
    import numpy as np, psutil, keras
    fits, mb, batch = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    EPOCHS = int(os.environ.get("FIT_EPOCHS", "1"))
    rows = int(mb * 1e6 / 4 / 16)
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    proc = psutil.Process()
    out = []
    for i in range(fits):
        x = np.random.rand(rows, 16).astype("float32")  # fresh arrays every fit
        y = np.random.rand(rows, 1).astype("float32")
        model.fit(x, y, epochs=EPOCHS, batch_size=batch, verbose=0)
        del x, y  # no gc.collect(): what the script leaves is freed by reference counts alone
        out.append(proc.memory_info().rss)
    print(json.dumps(out))
    """
)


def child(
    script: Path, hooked: bool, fits: int, mb: float, batch: int, traces: Path
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHWATCH_")}
    env.update(
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        HOOKED="1" if hooked else "0",
        EPOCHWATCH_DIR=str(traces),
        EPOCHWATCH_SOCKET=str(traces / "no-daemon.sock"),
        PYTHONPATH=str(REPO),
    )
    return subprocess.Popen(
        [sys.executable, str(script), str(fits), str(mb), str(batch)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def slope(rss: list[int], skip: int) -> float:
    return trend.theil_sen([float(v) for v in rss[skip:]]).slope / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fits", type=int, default=60)
    ap.add_argument("--mb", type=float, default=12.8)
    ap.add_argument("--skip", type=int, default=10)
    ap.add_argument("--batch", type=int, default=1024, help="batch size of each fit")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "fits.py"
        script.write_text(CHILD)
        traces = Path(tmp) / "traces"
        procs = {
            name: child(script, name == "hook", args.fits, args.mb, args.batch, traces)
            for name in ("plain", "hook")
        }
        rss = {}
        for name, p in procs.items():
            stdout, _ = p.communicate()
            if p.returncode != 0:
                print(f"{name}: exited {p.returncode}", file=sys.stderr)
                return 1
            rss[name] = json.loads(stdout.strip().splitlines()[-1])
        hook_bytes = [
            r.get("hook_bytes")
            for f in traces.glob("*.jsonl")
            for r in iter_records(f)
            if r.get("type") == "fit_end"
        ]
    per_fit = {name: slope(v, args.skip) for name, v in rss.items()}
    print(f"{args.fits} fits on fresh {args.mb} MB arrays, RSS per fit after fit {args.skip} (MiB):")
    for name, v in rss.items():
        print(f"  {name:5s} {per_fit[name]:6.3f} MiB/fit   RSS {v[0] / 2**20:.0f} -> {v[-1] / 2**20:.0f} MiB")
    diff = per_fit["hook"] - per_fit["plain"]
    print(f"  hook - plain: {diff:+.3f} MiB/fit ({'within' if abs(diff) <= 0.3 else 'OVER'} 0.3 MiB)")
    known = [b for b in hook_bytes if isinstance(b, int)]
    if known:
        print(f"  hook_bytes (the hook's own caches, from fit_end): {known[0]} -> {known[-1]}")
    return 0 if abs(diff) <= 0.3 else 1


if __name__ == "__main__":
    sys.exit(main())
