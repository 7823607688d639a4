"""Explain-where benchmark (issue 25): is the planted code named, and what does a window cost?

Synthetic training loops, no framework: a fake compiled step (a numpy matmul called from a
module laid out as TensorFlow's `eager/execute.py`), a fake Keras callback list (laid out
as `keras/src/callbacks/callback_list.py`) and, per run, a freshly written user module with
a planted fault at a random line under a random name:

- slow_callback: a callback's `on_train_batch_end` does more Python work every epoch
- slow_function: a user function called every step does more work every epoch
- slow_dataset: the user's `__getitem__`, run on a feeder thread laid out as tf.data's,
  does more work every epoch while the step waits for it (its calls timed into the epoch
  record, as the hook's input clock does for Keras' PyDataset and generator adapters)
- compiled: the compiled step does more matmuls every epoch
- leak_list: a callback keeps a numpy array every epoch (4-16 MiB)
- leak_cache: a module-level dict caches every step's batch
- native: libc malloc'ed buffers kept every epoch (must be "not in Python objects")

Each run drives the real Explainer (epoch records with real RSS) and counts as named when
the explain record's top place (of code, for slowdowns) is the planted one. Target: at
least 90% per kind. Then the cost of each window kind: epochs of a fixed workload with the
window open against epochs with it closed, interleaved (median ratio); target <= 2%.
For the memory window also the slices' own measure (each slice's cost read on the
training thread's CPU in the epochs it touched against the epochs before, as slices.py
paces them), steadier than a block ratio on a shared machine. `--tf-loop`: the memory
window on a real TensorFlow custom loop instead (TensorFlow needed).

    python bench/explain.py [--runs 3] [--seed 1] [--memory-pairs 5] [--tf-loop]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib.util
import itertools
import os
import queue
import random
import statistics
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from epochwatch.explain.anchor import STEPS as STEP_ANCHOR
from epochwatch.explain.anchor import StepAnchor
from epochwatch.explain.controller import Explainer, Limits
from epochwatch.explain.memory import DEPTH
from epochwatch.explain.slices import Slicer
from epochwatch.explain.stacks import RATE_HZ, StackWindow
from epochwatch.integrations.batch_clocks import timed

EPOCHS = 12
STEPS = 16

LIB_EXECUTE = """
import numpy as np
A = np.random.rand(128, 128)
def wait_for_input(q):
    return q.get()
def quick_execute(reps):
    out = A
    for _ in range(reps):
        out = A @ A
    return out
"""
LIB_DATA = """
def feed(getitem, q, stop):
    i = 0
    while not stop.is_set():
        item = getitem(i)
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                break
            except Exception:
                pass
        i += 1
"""
LIB_CALLBACKS = """
def dispatch(callbacks, method, *args):
    for cb in callbacks:
        getattr(cb, method)(*args)
"""


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _library(root: Path) -> tuple[ModuleType, ModuleType, ModuleType]:
    site = root / "lib" / "site-packages"
    ex = site / "tensorflow" / "python" / "eager" / "execute.py"
    cb = site / "keras" / "src" / "callbacks" / "callback_list.py"
    data = site / "tensorflow" / "python" / "data" / "ops" / "from_generator_op.py"
    for path, text in ((ex, LIB_EXECUTE), (cb, LIB_CALLBACKS), (data, LIB_DATA)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return _load(ex, "bench_tf_execute"), _load(cb, "bench_callback_list"), _load(data, "bench_tf_data")


def _user_module(root: Path, kind: str, rng: random.Random, n: int) -> tuple[ModuleType, str, int, int]:
    """A user module with the planted fault; returns it, the planted name, its line and
    (a leak) the bytes it keeps an epoch."""
    name = f"{kind}_{rng.randrange(1 << 20):x}"
    pad = "\n" * rng.randrange(0, 40)
    mib = rng.randrange(4, 17)
    body = {
        "slow_callback": f"class {name.title().replace('_', '')}:\n    def on_train_batch_end(self, epoch):\n"
        "        t = 0\n        for i in range(20000 * epoch):  # PLANTED\n            t += i * i\n",
        "slow_function": f"def {name}(epoch):\n    t = 0\n    for i in range(20000 * epoch):  # PLANTED\n"
        "        t += i * i\n",
        "compiled": "",
        "slow_dataset": f"EPOCH = [0]\nclass {name.title().replace('_', '')}:\n    def __getitem__(self, i):\n"
        "        t = 0\n        for j in range(4000 * EPOCH[0]):  # PLANTED\n            t += j * j\n"
        "        return t\n",
        "leak_list": f"KEPT = []\ndef {name}(epoch):\n    KEPT.append(np.ones({mib} << 17))  # PLANTED\n",
        "leak_cache": f"CACHE = {{}}\ndef {name}(epoch, step):\n    CACHE[(epoch, step)] = np.ones({mib} << 13)  # PLANTED\n",
        "native": f"HELD = []\ndef {name}(epoch):\n    p = LIBC.malloc({mib} << 20)\n"
        f"    ctypes.memset(p, 1, {mib} << 20)  # PLANTED\n    HELD.append(p)\n",
    }[kind]
    header = (
        "import ctypes\nimport numpy as np\nLIBC = ctypes.CDLL(None)\nLIBC.malloc.restype = ctypes.c_void_p\n"
    )
    text = header + pad + body
    path = root / f"user_{n}.py"
    path.write_text(text)
    line = next((i for i, t in enumerate(text.splitlines(), 1) if "# PLANTED" in t), 0)
    if kind == "slow_callback":
        name = f"{name.title().replace('_', '')}.on_train_batch_end"
    elif kind == "slow_dataset":
        name = f"{name.title().replace('_', '')}.__getitem__"
    return _load(path, f"bench_user_{n}"), name, line, mib << 20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fresh_heap() -> None:
    """Give the heap's free memory back to the system, as a fresh process would start: a
    run's native leak must show in RSS, not refill what earlier runs freed (glibc only)."""
    gc.collect()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).malloc_trim(0)


def _run(
    kind: str, lib: tuple[ModuleType, ModuleType, ModuleType], user: ModuleType, name: str
) -> list[dict[str, Any]]:
    execute, callbacks, data = lib
    _fresh_heap()
    written: list[dict[str, Any]] = []
    feeder, stop, q = None, threading.Event(), queue.Queue(maxsize=2)
    produced = [0.0]  # the producer's clock, as the hook keeps it (integrations/input_wait.py)
    if kind == "slow_dataset":  # tf.data runs the user's __getitem__ on its own thread
        getitem = getattr(user, name.split(".")[0])().__getitem__
        code = getitem.__func__.__code__

        def timed_getitem(i: int) -> Any:
            t0 = time.perf_counter()
            try:
                return getitem(i)
            finally:
                produced[0] += time.perf_counter() - t0

        feeder = threading.Thread(target=data.feed, args=(timed_getitem, q, stop), daemon=True)
        feeder.start()
    explainer = Explainer(lambda _t, **f: written.append(f), limits=Limits(min_samples=40))
    plant = getattr(user, name.split(".")[0]) if kind != "compiled" else None
    cbs = [plant()] if kind == "slow_callback" and plant else []
    # A Keras fit says its steps to an armed memory slice (anchor.py); the custom loop's
    # cache (leak_cache) does not: its slices start at a predicted time.
    STEP_ANCHOR.active = kind != "leak_cache"
    for epoch in range(EPOCHS):
        t0 = time.perf_counter()
        for step in range(STEPS):
            STEP_ANCHOR.begin(step)
            execute.quick_execute(2 + (3 * epoch if kind == "compiled" else 0))
            if kind == "slow_dataset":
                user.EPOCH[0] = epoch
                execute.wait_for_input(q)
            if kind == "slow_callback":
                callbacks.dispatch(cbs, "on_train_batch_end", epoch)
            elif kind == "slow_function":
                plant(epoch)
            elif kind == "leak_cache":
                plant(epoch, step)
        t1 = time.perf_counter()
        if kind in ("leak_list", "native"):
            plant(epoch)  # a callback's on_epoch_end: the epoch record says how long it took
        end = time.perf_counter()
        record = {"type": "epoch", "epoch": epoch, "seconds": end - t0, "steps": STEPS}
        record |= {"callbacks": {"seconds": end - t1}, "host": {"rss_bytes": _rss()}}
        if kind == "slow_dataset":
            record |= {
                "input_producer_seconds": produced[0],
                "input_producer_function": code.co_qualname,
                "input_producer_site": f"{code.co_filename}:{code.co_firstlineno}",
            }
            produced[0] = 0.0
        explainer.on_record(record)
    explainer.finish()
    STEP_ANCHOR.active = False
    stop.set()
    if feeder is not None:
        feeder.join()
    return written


def _named(kind: str, records: list[dict[str, Any]], name: str, line: int) -> bool:
    want = "slowdown" if kind.startswith("slow") or kind == "compiled" else "host_memory_growth"
    mine = [r for r in records if r["explains"] == want]
    if not mine:
        return False
    last = mine[-1]
    if kind == "native":
        return last["in_python"] is False
    if kind == "compiled":
        return bool(last["where"]) and last["where"][0]["category"] == "inside the compiled step"
    if want == "slowdown":
        code = [w for w in last["where"] if w["category"] in ("callback", "user code") or ": " in w["label"]]
        return bool(code) and name in (code[0]["label"], code[0]["function"])
    return bool(last["where"]) and last["where"][0]["site"].endswith(f":{line}")


def _read(kind: str, records: list[dict[str, Any]], planted: int) -> list[float]:
    """A leak's bytes per epoch as the explain record read them, over the planted rate."""
    mine = [r for r in records if r["explains"] == "host_memory_growth" and r["where"]]
    if kind not in ("leak_list", "leak_cache") or not mine:
        return []
    return [mine[-1]["where"][0]["bytes_per_epoch"] / planted]


def _workload(
    execute: ModuleType, steps: int, reps: int, anchor: StepAnchor | None = None
) -> Callable[[], None]:
    """An epoch of `steps` steps: a matmul and Python allocations, as a Keras step's (each
    step said to `anchor` as Keras' FitWatch says it)."""
    kept: list[Any] = []

    def epoch() -> None:
        for step in range(steps):
            if anchor is not None:
                anchor.begin(step)
            execute.quick_execute(reps)
            kept.append([{"step": i} for i in range(300)])
        kept.clear()

    return epoch


def _cost(
    lib: tuple[ModuleType, ModuleType, ModuleType], kind: str, pairs: int
) -> tuple[float, float | None]:
    """Median of (epoch with the window open) / (epoch without) - 1, interleaved; for the
    stack window also the sampling thread's CPU per second of window (noise-free)."""
    work = _workload(lib[0], STEPS, 30)  # an epoch of ~0.1-0.2 s

    def epoch() -> float:
        t0 = time.perf_counter()
        work()
        return time.perf_counter() - t0

    ratios, cpu, open_seconds = [], 0.0, 0.0

    def with_window() -> float:
        nonlocal cpu, open_seconds
        if kind == "none":  # the noise floor: the same pair, no window
            return epoch()
        window = StackWindow(threading.get_ident(), rate=float(kind.split("@")[1]))
        on = epoch()
        profile = window.close(1, on)
        cpu, open_seconds = cpu + profile.cpu_seconds, open_seconds + profile.seconds
        return on

    for i in range(pairs):  # the order alternates: the second epoch of a pair is not favoured
        if i % 2:
            on, off = with_window(), epoch()
        else:
            off, on = epoch(), with_window()
        ratios.append(on / off - 1)
    return statistics.median(ratios), (cpu / open_seconds if open_seconds else None)


def _memory_cost(
    lib: tuple[ModuleType, ModuleType, ModuleType] | None, steps: int, reps: int, pairs: int, keras: bool
) -> str:
    """A whole memory window (its slices across epoch boundaries, as the Explainer runs
    them) against as many epochs without, in interleaved blocks: the median of the
    blocks' ratios of the process's CPU time per epoch (the window's timers and snapshots
    included; CPU, not wall time: a shared machine's load moves wall time by more than 2%),
    and what tracing an epoch throughout costs on the same steps."""
    anchor = StepAnchor()
    anchor.active = keras
    work = _workload(lib[0], steps, reps, anchor) if lib is not None else _tf_workload(steps, reps, anchor)

    accounted: list[float] = []  # the slices' own measured cost, of the CPU of their window

    def block(epochs: int | None) -> tuple[float, int, float]:
        """(seconds, epochs, traced seconds): `epochs` plain ones, or a window's span."""
        slicer = Slicer(anchor=anchor) if epochs is None else None
        marks, n, cpu0 = [time.perf_counter()], 0, time.process_time()
        cpus = [time.thread_time()]
        while (slicer is not None and not slicer.finished) or (epochs is not None and n < epochs):
            work()
            marks.append(time.perf_counter())
            cpus.append(time.thread_time())
            n += 1
            if slicer is not None:  # as the Explainer says a boundary (controller.py)
                intervals = [b - a for a, b in itertools.pairwise(marks[-4:])]
                slicer.on_boundary(intervals, steps, 0.0, [b - a for a, b in itertools.pairwise(cpus[-4:])])
        if slicer is not None:
            slicer.stop()
            accounted.append(sum(slicer.costs) / max(1e-9, time.process_time() - cpu0))
        return (
            time.process_time() - cpu0,
            n,
            slicer.traced_seconds / (marks[-1] - marks[0]) if slicer else 0.0,
        )

    for _ in range(3):  # warm: the first epochs measure the machine, not the window
        work()
    ratios, spans, traced, span = [], [], [], 5
    for i in range(pairs):  # per epoch, with the window first in every other pair
        if i % 2:
            on, n, t = block(None)
            off, m, _t = block(n)
        else:
            off, m, _t = block(span)
            on, n, t = block(None)
        ratios.append((on / n) / (off / m) - 1)
        spans.append(span := n)
        traced.append(t)
    floor = []  # the same blocks with no window in either: what the machine's noise reads,
    for i in range(pairs):  # the pair's order alternating as above (the second block of a
        a, n, _t = block(int(statistics.median(spans)))  # pair runs warmer: always a/b read
        b, m, _t = block(int(statistics.median(spans)))  # +2.6% on one run of this box)
        floor.append((a / n) / (b / m) - 1 if i % 2 else (b / m) / (a / n) - 1)
    t0 = time.process_time()
    work()
    plain = time.process_time() - t0
    tracemalloc.start(DEPTH)
    t0 = time.process_time()
    work()
    whole = time.process_time() - t0
    tracemalloc.stop()
    return (
        f"{statistics.median(ratios):+.1%} ({min(ratios):+.1%}..{max(ratios):+.1%}) of the "
        f"{statistics.median(spans):g} epochs a window spans, its slices' own measure "
        f"{statistics.median(accounted):+.1%} ({min(accounted):+.1%}..{max(accounted):+.1%}) of them; "
        f"noise floor {statistics.median(floor):+.1%} "
        f"({min(floor):+.1%}..{max(floor):+.1%}); traced {statistics.median(traced):.1%} of them; "
        f"tracing a whole epoch: {whole / plain - 1:+.0%}; an epoch {plain * 1000:.0f} ms of CPU"
    )


def _tf_workload(steps: int, reps: int, anchor: StepAnchor) -> Callable[[], None]:
    """An epoch of a real TensorFlow custom loop: `steps` calls of a tf.function training
    step (a small MLP's forward, gradients and SGD update, `reps` hidden layers) and the
    loop's own Python allocations per step, as `_workload`'s."""
    import tensorflow as tf

    # One thread for TF's ops: an idle pool's threads spin, and that CPU (what the load
    # lets them spin) would be most of the noise of a CPU-time measure.
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    layers = [tf.Variable(tf.random.normal((256, 256), stddev=0.05)) for _ in range(reps)]
    x = tf.random.normal((128, 256))

    @tf.function
    def train_step(x: Any) -> Any:
        with tf.GradientTape() as tape:
            h = x
            for w in layers:
                h = tf.tanh(h @ w)
            loss = tf.reduce_mean(h * h)
        for w, g in zip(layers, tape.gradient(loss, layers), strict=True):
            w.assign_sub(0.01 * g)
        return loss

    kept: list[Any] = []

    def epoch() -> None:
        for step in range(steps):
            anchor.begin(step)
            kept.append((train_step(x), [{"step": i} for i in range(300)]))
        kept.clear()

    epoch()  # traced here, not in a measured block
    return epoch


def _clock_cost(calls: int = 200_000) -> float:
    """Microseconds a batch-hook clock (integrations/batch_clocks.py) adds to one call of a
    callback's hook: the best of five rounds, clocked against plain."""

    class Hook:
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            return None

    plain, clocked = Hook().on_train_batch_end, timed(Hook().on_train_batch_end, [0.0])
    best = {}
    for name, method in (("plain", plain), ("clocked", clocked)):
        rounds = []
        for _ in range(5):
            t0 = time.perf_counter()
            for i in range(calls):
                method(i, None)
            rounds.append(time.perf_counter() - t0)
        best[name] = min(rounds)
    return (best["clocked"] - best["plain"]) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pairs", type=int, default=12)
    p.add_argument("--memory-pairs", type=int, default=5)
    p.add_argument(
        "--tf-loop",
        action="store_true",
        help="only the memory window's cost on a real TensorFlow custom loop (needs tensorflow)",
    )
    p.add_argument(
        "--tf-captures",
        action="store_true",
        help="only the profiler capture's cost on a real TensorFlow custom loop (needs tensorflow)",
    )
    args = p.parse_args(argv)
    # One BLAS thread (numpy is first imported below): spinning BLAS workers on a small,
    # shared machine would slow the planted Python work and blur what is measured.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if args.tf_loop or args.tf_captures:
        return _tf_loop_costs(args.memory_pairs, memory=not args.tf_captures)
    rng = random.Random(args.seed)
    kinds = (
        "slow_callback",
        "slow_function",
        "slow_dataset",
        "compiled",
        "leak_list",
        "leak_cache",
        "native",
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lib = _library(root)
        n, ok_all = 0, True
        print(f"{'kind':<14} named  runs  share  (target >= 90%)")
        for kind in kinds if args.runs > 0 else ():  # --runs 0: the costs only
            hits, read = 0, []
            for _ in range(args.runs):
                n += 1
                user, name, line, planted = _user_module(root, kind, rng, n)
                records = _run(kind, lib, user, name)
                hits += _named(kind, records, name, line)
                read += _read(kind, records, planted)
            share = hits / args.runs
            ok_all &= share >= 0.9
            rates = f"  bytes/epoch read {min(read):.2f}-{max(read):.2f}x the planted" if read else ""
            print(f"{kind:<14} {hits:>5}  {args.runs:>4}  {share:>5.0%}{rates}")
        print(f"\n{'window':<14} cost (median over {args.pairs} interleaved pairs; target <= 2%)")
        for kind in ("none", f"stack@{RATE_HZ:g}"):
            ratio, cpu = _cost(lib, kind, args.pairs)
            own = f"  (sampler CPU {cpu:.2%} of the window)" if cpu is not None else ""
            print(f"{kind:<14} {ratio:+.1%}{own}")
        print(f"batch-hook clock  {_clock_cost():.2f} us a call (target well under 1 us)")
        # tracemalloc: tiny fast epochs (16 steps, ~20-40 ms) and longer ones (50 steps,
        # ~0.25 s), slices started at a step ("steps": a Keras fit, or a hook.epoch() loop
        # whose updates are counted) or at a predicted time ("timed": automatic epochs).
        for label, steps, reps in (("tiny epochs", 16, 4), ("0.25 s epochs", 50, 20)):
            for keras in (True, False):
                how = "steps" if keras else "timed"
                cost = _memory_cost(lib, steps, reps, args.memory_pairs, keras)
                print(f"tracemalloc, {label}, {how:<6} {cost}")
    return 0 if ok_all else 1


def _capture_cost(steps: int, reps: int, pairs: int, counted: bool) -> str:
    """One TF profiler capture as the Explainer takes it (explain/captures.py with
    integrations/tf_profile.py): armed at an epoch record, begun at a step (`counted`: the
    loop says its steps, as a Keras fit does) or at the record, ended after its steps or
    its time, read back at the next record. Measured: the extra process CPU of an epoch
    with a capture and the record that reads it, against two plain epochs (interleaved
    pairs, the median and the spread), beside the cost the Explainer reckons for it. The
    capture's window lasts until that reckoned cost is paid (the next capture may begin):
    the measured extra CPU over the CPU of the epochs the window spans is its share, the
    2% target's measure."""
    from epochwatch.explain.captures import Captures
    from epochwatch.integrations.tf_profile import TFProfiler

    anchor = StepAnchor()
    work = _tf_workload(steps, reps, anchor)
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        work()
        walls.append(time.perf_counter() - t0)
    seconds = statistics.median(walls)

    def captured(root: str) -> tuple[float, float, float]:
        """(process CPU, the reckoned cost, seconds from its record until it is paid)."""
        captures = Captures(TFProfiler, lambda: root, anchor=anchor)
        captures._arm("slow")  # as a slow stack window that found the time in the step
        anchor.active = counted
        cpu0, t0 = time.process_time(), time.perf_counter()
        captures.on_epoch(0, seconds, steps)
        work()
        captures.on_epoch(1, time.perf_counter() - t0, steps)
        cpu = time.process_time() - cpu0
        anchor.active = False
        captures.close()
        return cpu, captures.cost_seconds, captures._paid_at - t0

    def plain() -> float:
        cpu0 = time.process_time()
        work()
        return time.process_time() - cpu0

    extra, reckoned, spans, plain_cpu = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        captured(f"{tmp}/warm")
        for i in range(pairs):
            if i % 2:
                on, cost, paid = captured(f"{tmp}/{i}")
                off = plain()
            else:
                off = plain()
                on, cost, paid = captured(f"{tmp}/{i}")
            extra.append(on - off)  # the capture's epoch, and the records that began and read it
            reckoned.append(cost)
            spans.append(paid)
            plain_cpu.append(off)
    per_second = statistics.median(plain_cpu) / seconds  # process CPU per second of training
    span = statistics.median(spans)
    share = statistics.median(extra) / (per_second * span)
    return (
        f"measured {statistics.median(extra):+.4f} s of CPU ({min(extra):+.4f}..{max(extra):+.4f}), "
        f"reckoned {statistics.median(reckoned):.4f} s; the window spans {span:.1f} s "
        f"({span / seconds:.0f} epochs): measured {share:.2%} of it"
    )


def _tf_loop_costs(pairs: int, memory: bool = True) -> int:
    """A profiler capture and (`memory`) the memory window on a real TensorFlow custom loop."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(f"a TF profiler capture on a real TF custom loop (median over {pairs} interleaved pairs)")
    for label, steps, reps in (("~0.1 s epochs", 50, 2), ("~0.25 s epochs", 80, 3)):
        for counted in (True, False):
            how = "steps" if counted else "timed"
            print(f"{label}, {how:<6} {_capture_cost(steps, reps, pairs, counted)}")
    if not memory:
        return 0
    print(f"tracemalloc on a real TF custom loop (median over {pairs} interleaved pairs; target <= 2%)")
    for label, steps, reps in (("~0.1 s epochs", 50, 2), ("~0.25 s epochs", 80, 3)):
        for counted in (True, False):
            how = "steps" if counted else "timed"
            print(f"{label}, {how:<6} {_memory_cost(None, steps, reps, pairs, counted)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
