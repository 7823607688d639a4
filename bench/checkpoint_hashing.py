"""What recording a multi-GB checkpoint save costs the training thread, hashing on vs off.

Two measurements, each against a baseline taken in the same run:

1. File level (no TF): a "save" writes N GiB; then either nothing (baseline) or what the
   saving integration does after Keras returns (`SaveEvents.saved`: list + stat the files,
   queue the hash job). Prints the save time, the time added on the training thread, and
   how many "training steps" (a pure-Python + numpy step, the worst case for the GIL) the
   thread ran per second while the background thread hashed, against the same loop with
   nothing in the background.
2. Keras (`--keras`): `model.save_weights` of a model with about `--keras-gib` GiB of
   weights, unpatched (baseline) and then through the installed saving integration.

    python bench/checkpoint_hashing.py [--gib 2] [--repeat 3] [--keras] [--keras-gib 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from epochwatch.checkpoints import files as cfiles  # noqa: E402
from epochwatch.checkpoints.events import SaveEvents  # noqa: E402
from epochwatch.guard import Guard  # noqa: E402

CHUNK = 64 << 20


def write_file(path: Path, gib: float, block: bytes) -> float:
    """The stand-in save: N GiB written the way h5py/zipfile write (buffered, no fsync)."""
    t0 = time.perf_counter()
    left = int(gib * (1 << 30))
    with open(path, "wb") as fh:
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
    return time.perf_counter() - t0


def step_rate(seconds: float, stop: threading.Event | None = None) -> float:
    """Training steps per second on this thread: Python work plus a small numpy op."""
    a = np.random.default_rng(0).random((64, 64), dtype=np.float32)
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end and not (stop is not None and stop.is_set()):
        s = 0
        for i in range(2000):
            s += i * i
        a = a @ a
        a /= float(np.abs(a).max()) + 1e-6
        n += 1
    return n / (time.perf_counter() - t0)


def file_level(gib: float, repeat: int, workdir: Path) -> None:
    block = os.urandom(CHUNK)
    path = workdir / "model.weights.h5"
    records: list[dict[str, Any]] = []
    done = threading.Event()

    def emit(type_: str, **fields: Any) -> None:
        records.append(fields)
        done.set()

    events = SaveEvents(emit)
    write_file(path, gib, block)  # warm the page cache and the disk path once
    base_saves, base_rates, added, hooked_saves, hooked_rates, hash_s = [], [], [], [], [], []
    for _ in range(repeat):
        base_saves.append(write_file(path, gib, block))
        base_rates.append(step_rate(2.0))

        hooked_saves.append(write_file(path, gib, block))
        done.clear()
        t0 = time.perf_counter()
        events.saved(str(path), cfiles.WEIGHTS_H5, "Model.save_weights", 0.0, iterations=1)
        added.append(time.perf_counter() - t0)
        hooked_rates.append(step_rate(2.0, stop=None))
        done.wait(120)
        hash_s.append(float(records[-1].get("hash_seconds", float("nan"))))
        assert "sha256" in records[-1], records[-1]
    events.close(60)
    size = gib * (1 << 30)
    print(f"file level: {gib:g} GiB save, {repeat} repeats (medians)")
    print(f"  save (baseline, no recording)      {statistics.median(base_saves) * 1e3:9.1f} ms")
    print(
        f"  added on the training thread       {statistics.median(added) * 1e3:9.3f} ms  (max {max(added) * 1e3:.3f} ms)"
    )
    ratio = statistics.median(added) / statistics.median(base_saves)
    print(f"  added / save time                  {ratio * 100:9.4f} %")
    print(
        f"  hash on the background thread      {statistics.median(hash_s):9.2f} s  ({size / statistics.median(hash_s) / 1e9:.2f} GB/s)"
    )
    rate_ratio = statistics.median(hooked_rates) / statistics.median(base_rates)
    print(
        f"  training steps/s while hashing     {rate_ratio:9.3f} x baseline ({statistics.median(base_rates):.0f} steps/s)"
    )


class _StubRecorder:
    """What the saving integration needs from the Recorder, for a process without the hook."""

    def __init__(self, trace_dir: Path) -> None:
        self.guard = Guard()
        self.run_id = "bench"
        self.trace_dir = trace_dir
        self.sink_description = "bench"
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.overhead = 0.0

    def emit(self, type_: str, **fields: Any) -> None:
        self.records.append((type_, fields))

    def add_overhead(self, seconds: float) -> None:
        self.overhead += seconds

    def add_listener(self, fn: Any) -> None:
        pass

    def start(self) -> bool:
        return True


def keras_level(gib: float, repeat: int, workdir: Path) -> None:
    """model.save_weights, alternating the original method and the recorded one.

    Whole-save times swing by tens of percent between identical saves (page-cache
    writeback), so the number that answers "what does recording add" is the wrapper's own
    time after Keras returned, which it reports through Recorder.add_overhead.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    units = 4096
    layers = max(1, int(gib * (1 << 30) / (units * units * 4)))
    model = keras.Sequential([keras.Input((units,))] + [keras.layers.Dense(units) for _ in range(layers)])
    path = workdir / "big.weights.h5"
    model.save_weights(path)  # warm-up

    from epochwatch.integrations import saving

    stub = _StubRecorder(workdir)
    saving.install_keras(stub)  # type: ignore[arg-type]
    events = saving.events_for(stub)  # type: ignore[arg-type]
    original = type(model).save_weights.__wrapped__  # type: ignore[attr-defined]
    base, hooked, added = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        original(model, path)
        base.append(time.perf_counter() - t0)
        before = stub.overhead
        t0 = time.perf_counter()
        model.save_weights(path)
        hooked.append(time.perf_counter() - t0)
        added.append(stub.overhead - before)
        events.worker.drain(300)
    events.close(60)
    saves = [f for t, f in stub.records if t == "save"]
    size = saves[-1]["bytes"]
    med = statistics.median
    print(f"keras: model.save_weights, {size / (1 << 30):.2f} GiB, {repeat} alternating pairs (medians)")
    print(f"  original save_weights              {med(base):9.3f} s  (range {min(base):.3f}-{max(base):.3f})")
    print(
        f"  recorded save_weights              {med(hooked):9.3f} s  (range {min(hooked):.3f}-{max(hooked):.3f})"
    )
    print(f"  added by recording (own timing)    {med(added) * 1e3:9.3f} ms  (max {max(added) * 1e3:.3f} ms)")
    print(f"  added / save time                  {med(added) / med(base) * 100:9.4f} %")
    hashed = med(float(s["hash_seconds"]) for s in saves)
    print(f"  hashed in the background           {hashed:9.2f} s  ({size / hashed / 1e9:.2f} GB/s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keras", action="store_true")
    parser.add_argument("--keras-gib", type=float, default=1.0)
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        file_level(args.gib, args.repeat, Path(tmp))
        if args.keras:
            keras_level(args.keras_gib, args.repeat, Path(tmp))


if __name__ == "__main__":
    main()
