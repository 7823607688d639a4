"""What `import epochwatch.hook` costs a small Keras training (the worst case: cheap epochs).

Runs the same fit in fresh processes, alternating plain / hooked, and times only the fit
(wall clock and process CPU time), so TF's import and start-up do not dilute the ratio.
Wall time on shared machines swings 25-40% between identical runs: read the CPU ratio
and the spread, not one number. Also prints sum(overhead_seconds) / sum(seconds) from
the hooked runs' traces: the hook's own accounting of its cost.

`--fits N` times a loop of N one-sample fits of one epoch instead (a fit per sample, as
keras#13710 does: the hook's fixed cost per fit, the worst case), and also the training
thread's own CPU time (`time.thread_time`), where the hook's fit start and end run.
On a shared machine the hook's few milliseconds drown in the noise of a fit; `--profile`
adds a cProfile run on the training thread's CPU clock, in each pair's hooked child after
its timed loop, and prints the time spent in epochwatch's own code, per fit and as a share
of the loop (cProfile inflates many small calls: compare these with each other).

    python bench/hook_overhead.py [--pairs 7] [--epochs 20] [--fits 150]
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
    fits = int(sys.argv[2])
    for i in range(min(fits, 10)):
        m.fit(x[i : i + 1], y[i : i + 1], epochs=1, verbose=0)
    w0, c0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
    if fits:
        for i in range(fits):
            m.fit(x[i : i + 1], y[i : i + 1], epochs=1, verbose=0)
    else:
        m.fit(x, y, batch_size=64, epochs=int(sys.argv[1]), validation_split=0.1, verbose=0)
    out = {"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0, "thread": time.thread_time() - t0}
    if fits and os.environ.get("PROFILE") == "1":
        import cProfile, pstats
        profile = cProfile.Profile(time.thread_time)
        t0 = time.thread_time()
        profile.enable()
        for i in range(fits):
            m.fit(x[i : i + 1], y[i : i + 1], epochs=1, verbose=0)
        profile.disable()
        stats = pstats.Stats(profile).stats
        own = sum(v[2] for k, v in stats.items() if os.sep + "epochwatch" + os.sep in k[0])
        out.update(profiled=time.thread_time() - t0, own=own)
    print(json.dumps(out))
    """
)


def run_child(
    script: Path, epochs: int, fits: int, hooked: bool, trace_dir: Path, profile: bool = False
) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EPOCHWATCH_")}
    env.update(
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        HOOKED="1" if hooked else "0",
        PROFILE="1" if profile else "0",
        EPOCHWATCH_DIR=str(trace_dir),
        EPOCHWATCH_SOCKET=str(trace_dir / "no-daemon.sock"),
        PYTHONPATH=str(REPO),
    )
    out = subprocess.run(
        [sys.executable, str(script), str(epochs), str(fits)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.4f}  min {min(values):.4f}  max {max(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--fits", type=int, default=0, help="time N one-sample fits instead")
    parser.add_argument("--profile", action="store_true", help="with --fits: epochwatch's own share")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        script = tmpdir / "child.py"
        script.write_text(CHILD)
        traces = tmpdir / "traces"
        wall_ratio, cpu_ratio, plain_wall, hooked_wall = [], [], [], []
        thread_ratio, thread_ms = [], []
        own_ms, own_share, profiled_ratio = [], [], []
        for i in range(args.pairs):
            order = (False, True) if i % 2 == 0 else (True, False)
            results = {
                hooked: run_child(script, args.epochs, args.fits, hooked, traces, args.profile)
                for hooked in order
            }
            plain, hooked = results[False], results[True]
            plain_wall.append(plain["wall"])
            hooked_wall.append(hooked["wall"])
            wall_ratio.append(hooked["wall"] / plain["wall"])
            cpu_ratio.append(hooked["cpu"] / plain["cpu"])
            thread_ratio.append(hooked["thread"] / plain["thread"])
            thread_ms.append((hooked["thread"] - plain["thread"]) / max(1, args.fits) * 1e3)
            if "own" in hooked:
                print(
                    f"  profiled loop: plain {plain['profiled']:.3f}s, hooked {hooked['profiled']:.3f}s cpu"
                )
                own_ms.append(hooked["own"] / args.fits * 1e3)
                own_share.append(hooked["own"] / hooked["profiled"])
                profiled_ratio.append(hooked["profiled"] / plain["profiled"])
            print(
                f"pair {i + 1}: plain {plain['wall']:.3f}s wall {plain['cpu']:.3f}s cpu | "
                f"hooked {hooked['wall']:.3f}s wall {hooked['cpu']:.3f}s cpu",
                flush=True,
            )
        overhead = seconds = setup = 0.0
        epochs = 0
        steady_overhead = steady_seconds = steady_background = 0.0
        steady_epochs = 0
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
                        steady_background += rec.get("overhead_background_seconds", 0.0)
                        steady_seconds += rec["seconds"]
                        steady_epochs += 1
    print()
    if args.fits:
        print(f"small Keras model, {args.fits} one-sample fits of one epoch, {args.pairs} alternating pairs")
        print(f"hooked/plain training-thread CPU ratio: {spread(thread_ratio)}")
        print(f"hook's training-thread CPU per fit: {spread(thread_ms)} ms")
        if own_ms:
            print(
                f"profiled (training thread's CPU clock): epochwatch's own code {spread(own_ms)} ms per fit"
            )
            print(f"  its share of the hooked loop: {spread(own_share)}")
            print(f"  hooked/plain profiled loop ratio: {spread(profiled_ratio)}")
    else:
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
    if steady_epochs:
        thread = (steady_overhead - steady_background) / steady_epochs * 1e3
        print(
            f"  per timed epoch: training thread {thread:.2f} ms, "
            f"hook threads {steady_background / steady_epochs * 1e3:.2f} ms (CPU)"
        )


if __name__ == "__main__":
    main()
