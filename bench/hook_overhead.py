"""What `import epochwatch.hook` costs a small Keras training (the worst case: cheap epochs).

Runs the same fit in fresh processes, alternating plain / hooked, and times only the fit
(wall clock and process CPU time), so TF's import and start-up do not dilute the ratio.
Wall time on shared machines swings 25-40% between identical runs: read the CPU ratio
and the spread, not one number. Also prints sum(overhead_seconds) / sum(seconds) from
the hooked runs' traces: the hook's own accounting of its cost.

    python bench/hook_overhead.py [--pairs 7] [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from epochwatch.trace.reader import iter_records  # noqa: E402

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    if os.environ.get("HOOKED") == "1":
        import epochwatch.hook
    import numpy as np, keras
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4096, 20)).astype("float32")
    y = (x[:, :5].sum(axis=1) > 0).astype("float32")
    m = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    m.fit(x, y, batch_size=64, epochs=1, verbose=0)  # warm-up: tracing, allocator
    w0, c0 = time.perf_counter(), time.process_time()
    m.fit(x, y, batch_size=64, epochs=int(sys.argv[1]), validation_split=0.1, verbose=0)
    print(json.dumps({"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}))
    """
)


def run_child(script: Path, epochs: int, hooked: bool, trace_dir: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHWATCH_")}
    env.update(
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        HOOKED="1" if hooked else "0",
        EPOCHWATCH_DIR=str(trace_dir),
        EPOCHWATCH_SOCKET=str(trace_dir / "no-daemon.sock"),
        PYTHONPATH=str(REPO),
    )
    out = subprocess.run(
        [sys.executable, str(script), str(epochs)], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.4f}  min {min(values):.4f}  max {max(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        script = tmpdir / "child.py"
        script.write_text(CHILD)
        traces = tmpdir / "traces"
        wall_ratio, cpu_ratio, plain_wall, hooked_wall = [], [], [], []
        for i in range(args.pairs):
            order = (False, True) if i % 2 == 0 else (True, False)
            results = {hooked: run_child(script, args.epochs, hooked, traces) for hooked in order}
            plain, hooked = results[False], results[True]
            plain_wall.append(plain["wall"])
            hooked_wall.append(hooked["wall"])
            wall_ratio.append(hooked["wall"] / plain["wall"])
            cpu_ratio.append(hooked["cpu"] / plain["cpu"])
            print(
                f"pair {i + 1}: plain {plain['wall']:.3f}s wall {plain['cpu']:.3f}s cpu | "
                f"hooked {hooked['wall']:.3f}s wall {hooked['cpu']:.3f}s cpu",
                flush=True,
            )
        overhead = seconds = setup = 0.0
        epochs = 0
        steady_overhead = steady_seconds = 0.0
        for trace in traces.glob("*.jsonl"):
            for rec in iter_records(trace):
                if rec["type"] == "run_start":
                    setup += rec.get("overhead_seconds", 0.0)
                if rec["type"] == "epoch":
                    overhead += rec["overhead_seconds"]
                    seconds += rec["seconds"]
                    epochs += 1
                    if rec.get("fit", 0) > 0:  # the timed fit: set-up and first traces are behind it
                        steady_overhead += rec["overhead_seconds"]
                        steady_seconds += rec["seconds"]
    print()
    print(f"small Keras model, {args.epochs} epochs per fit, {args.pairs} alternating pairs")
    print(f"fit wall, plain : {spread(plain_wall)} s")
    print(f"fit wall, hooked: {spread(hooked_wall)} s")
    print(f"hooked/plain wall ratio: {spread(wall_ratio)}")
    print(f"hooked/plain CPU  ratio: {spread(cpu_ratio)}")
    print(
        f"hook's own accounting: sum(overhead_seconds)/sum(seconds) = {overhead / seconds:.4%} over {epochs} epochs"
    )
    print(
        f"  in the timed fits only: {steady_overhead / steady_seconds:.4%}; "
        f"run set-up (run_start.overhead_seconds) {setup / max(1, args.pairs) * 1e3:.0f} ms per run"
    )
    print(
        f"mean overhead per epoch: {overhead / epochs * 1e6:.0f} us; mean epoch {seconds / epochs * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
