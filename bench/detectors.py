"""Detector benchmark: how often healthy runs are flagged, how early faulty runs are.

Seeded and reproducible. Each scenario generates RUNS synthetic runs of EPOCHS epochs
(epoch 0 is the compile epoch and is dropped as warm-up, as the detectors do) and
evaluates the detector's decision after every epoch, exactly as online: the detector's
own window (trailing values, lower envelope for memory and disk), its GrowthRule, and
its persistence (consecutive epochs). This "fast path" calls trend.assess_growth on the
series directly instead of building trace records; `--verify N` replays the first N
runs of each scenario through the real OnlineAnalyzer on synthetic trace records and
checks that both flag the same epoch.

Prints, per scenario, the share of runs flagged by epoch 8, 10, 30 and 100 and the
median delay (epochs from the fault's onset to the finding). Targets (issue 3): at most
1% flagged on i.i.d. noise and 5% at AR(1) rho 0.5; at least 95% of 1%/epoch ramps
caught by epoch 30. Issue 11 adds: at least 95% of RSS leaks of 5%/epoch and more and of
slowdowns of 3%/epoch and more flagged by epoch 8 (short runs: the blatant rule and the
step rule of analysis/growth.py and shapes.assess_step are part of the fast path), and
interval scenarios: 2-epoch runs of 1,024 steps an epoch seen as 32 sub-epoch intervals
per epoch, where a leak must be flagged before the run ends in at least 95% of runs and a
healthy run in at most 1%. Then bench/attribution.py: a series that rises beside a
slowdown without causing it must not be named as its likely cause in at least 95% of runs.

    python bench/detectors.py [--runs 1000] [--epochs 100] [--seed 1] [--jobs 2] [--verify 20] [--attribution 200]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from epochwatch.analysis import shapes, trend
from epochwatch.analysis.detectors import disk, gpu_memory, host_memory, slowdown

MIB = 1024.0**2
GIB = 1024.0**3


@dataclass(frozen=True)
class Family:
    """What a scenario's series is, and the detector that judges it."""

    name: str
    rule: trend.GrowthRule
    envelope: int
    persistence: int
    kind: str
    blatant: shapes.BlatantRule | None = None
    step: shapes.StepRule | None = None


SLOW = Family(
    "epoch time", slowdown.RULE, 1, slowdown.PERSISTENCE, "slowdown", slowdown.BLATANT, slowdown.STEP
)
MEM = Family(
    "host RSS",
    host_memory.RULE,
    host_memory.ENVELOPE,
    host_memory.PERSISTENCE,
    "host_memory_growth",
    host_memory.BLATANT,
)
GPU = Family(
    "GPU memory",
    gpu_memory.RULE,
    gpu_memory.ENVELOPE,
    gpu_memory.PERSISTENCE,
    "gpu_memory_growth",
    host_memory.BLATANT,
)
DISK = Family(
    "dir bytes", disk.BYTES_RULE, disk.ENVELOPE, disk.PERSISTENCE, "disk_growth", disk.BLATANT_BYTES
)
# The same detectors on sub-epoch intervals (the series' points are intervals, not epochs).
SLOW_IV = Family(
    "step time / interval",
    slowdown.RULE,
    1,
    slowdown.PERSISTENCE,
    "slowdown",
    slowdown.BLATANT,
    slowdown.STEP,
)
MEM_IV = Family(
    "host RSS / interval",
    host_memory.RULE,
    host_memory.ENVELOPE,
    host_memory.PERSISTENCE,
    "host_memory_growth",
    host_memory.BLATANT,
)

Gen = Callable[[random.Random, int], tuple[list[float], int | None]]


def _ln(rng: random.Random, cv: float) -> float:
    return math.exp(rng.gauss(0.0, cv))


def _ar(rng: random.Random, n: int, rho: float, sd: float) -> list[float]:
    e = [rng.gauss(0.0, sd)]
    inn = sd * math.sqrt(1 - rho * rho)
    for _ in range(n - 1):
        e.append(rho * e[-1] + rng.gauss(0.0, inn))
    return e


# -- epoch time, healthy -----------------------------------------------------------------


def iid(cv: float) -> Gen:
    return lambda rng, n: ([3.0] + [_ln(rng, cv) for _ in range(1, n)], None)


def ar1(rho: float, sd: float = 0.10) -> Gen:
    def gen(rng: random.Random, n: int) -> tuple[list[float], int | None]:
        e = _ar(rng, n, rho, sd)
        return [3.0] + [math.exp(v) for v in e[1:]], None

    return gen


def heavy(rng: random.Random, n: int) -> tuple[list[float], int | None]:
    out = [3.0]
    for _ in range(1, n):
        t = rng.gauss(0, 1) / math.sqrt((rng.gauss(0, 1) ** 2 + rng.gauss(0, 1) ** 2) / 2)  # Student t, 2 df
        out.append(math.exp(max(-3.0, min(3.0, 0.05 * t))))
    return out, None


def spikes(rng: random.Random, n: int) -> tuple[list[float], int | None]:
    return [3.0] + [(1.5 if i % 5 == 0 else 1.0) * _ln(rng, 0.03) for i in range(1, n)], None


def warmup_time(rng: random.Random, n: int) -> tuple[list[float], int | None]:
    return [3.0] + [(1 + 0.15 * (1 - math.exp(-i / 2))) * _ln(rng, 0.03) for i in range(1, n)], None


def step(rng: random.Random, n: int) -> tuple[list[float], int | None]:
    at = rng.randint(20, 80)
    return [3.0] + [(1.25 if i >= at else 1.0) * _ln(rng, 0.05) for i in range(1, n)], None


# -- epoch time, faulty ------------------------------------------------------------------


def ramp(rate: float, noise: Gen | None = None, cv: float = 0.05) -> Gen:
    def gen(rng: random.Random, n: int) -> tuple[list[float], int | None]:
        base = noise(rng, n)[0] if noise else [3.0] + [_ln(rng, cv) for _ in range(1, n)]
        return [3.0] + [(1 + rate * i) * base[i] for i in range(1, n)], 1

    return gen


def step_change(ratio: float, at: int, cv: float = 0.05) -> Gen:
    def gen(rng: random.Random, n: int) -> tuple[list[float], int | None]:
        return [3.0] + [(ratio if i >= at else 1.0) * _ln(rng, cv) for i in range(1, n)], at

    return gen


def late_ramp(rng: random.Random, n: int) -> tuple[list[float], int | None]:
    at = rng.randint(30, 60)
    return [3.0] + [(1 + 0.01 * max(0, i - at)) * _ln(rng, 0.05) for i in range(1, n)], at


# -- memory and disk ---------------------------------------------------------------------


def mem_warmup(rng: random.Random, n: int) -> tuple[list[float], int | None]:
    return [2 * GIB * (1 + 0.3 * (1 - math.exp(-i / 2))) * _ln(rng, 0.005) for i in range(n)], None


def mem_gc_saw(rng: random.Random, n: int) -> tuple[list[float], int | None]:
    period = rng.randint(3, 9)
    return [2 * GIB * (1 + 0.05 * ((i % period) / period)) * _ln(rng, 0.003) for i in range(n)], None


def mem_chunk(rng: random.Random, n: int) -> tuple[list[float], int | None]:
    at = rng.randint(20, 80)
    return [2 * GIB * (1.10 if i >= at else 1.0) * _ln(rng, 0.003) for i in range(n)], None


def mem_wander(rng: random.Random, n: int) -> tuple[list[float], int | None]:
    e = _ar(rng, n, 0.8, 0.01)
    return [2 * GIB * math.exp(v) for v in e], None


def mem_leak(rate: float) -> Gen:
    def gen(rng: random.Random, n: int) -> tuple[list[float], int | None]:
        period = rng.randint(3, 9)
        return [
            2 * GIB * (1 + rate * i + 0.05 * ((i % period) / period)) * _ln(rng, 0.003) for i in range(n)
        ], 1

    return gen


# -- sub-epoch intervals: 2 epochs x 32 intervals of 32 steps (1,024 steps an epoch) --------
IV_PER_EPOCH = 32


def iv_mem(leak_per_epoch: float) -> Gen:
    """RSS per interval: 2 GiB, allocator noise, a GC sawtooth of 2% within each epoch, and
    a leak of `leak_per_epoch` (relative) spread evenly over the steps."""

    def gen(rng: random.Random, n: int) -> tuple[list[float], int | None]:
        period = rng.randint(4, 12)
        return [
            2
            * GIB
            * (1 + leak_per_epoch * i / IV_PER_EPOCH + 0.02 * ((i % period) / period))
            * _ln(rng, 0.003)
            for i in range(n)
        ], (1 if leak_per_epoch else None)

    return gen


def iv_time(slow_per_epoch: float, cv: float = 0.10) -> Gen:
    """Median step time per interval (10% noise): steady, or slowing by `slow_per_epoch`."""

    def gen(rng: random.Random, n: int) -> tuple[list[float], int | None]:
        return [0.02 * (1 + slow_per_epoch * i / IV_PER_EPOCH) * _ln(rng, cv) for i in range(n)], (
            1 if slow_per_epoch else None
        )

    return gen


def gpu_staircase(rng: random.Random, n: int) -> tuple[list[float], int | None]:
    every = rng.randint(4, 8)
    phase = rng.randint(0, every - 1)
    return [2 * GIB + 256 * MIB * ((i + phase) // every) for i in range(n)], 1


def disk_saw(floor_growth: float) -> Gen:
    def gen(rng: random.Random, n: int) -> tuple[list[float], int | None]:
        period = rng.randint(3, 7)
        ckpt = 100 * MIB * _ln(rng, 0.02)
        out = []
        for i in range(n):
            cycle, pos = divmod(i, period)
            out.append(ckpt * (3 + pos) + floor_growth * cycle * ckpt)
        return out, (1 if floor_growth else None)

    return gen


@dataclass(frozen=True)
class Scenario:
    name: str
    family: Family
    gen: Gen
    faulty: bool
    length: int | None = None  # points per run when not --epochs (interval scenarios: 2 epochs)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("iid noise 3%", SLOW, iid(0.03), False),
    Scenario("iid noise 30%", SLOW, iid(0.30), False),
    Scenario("AR(1) rho 0.3, 10%", SLOW, ar1(0.3), False),
    Scenario("AR(1) rho 0.5, 10%", SLOW, ar1(0.5), False),
    Scenario("AR(1) rho 0.8, 10%", SLOW, ar1(0.8), False),
    Scenario("heavy-tailed (t2) 5%", SLOW, heavy, False),
    Scenario("spike every 5th epoch", SLOW, spikes, False),
    Scenario("warm-up plateau (time)", SLOW, warmup_time, False),
    Scenario("one benign step +25%", SLOW, step, False),
    Scenario("RSS warm-up plateau", MEM, mem_warmup, False),
    Scenario("RSS GC sawtooth, flat", MEM, mem_gc_saw, False),
    Scenario("RSS one chunk +10%", MEM, mem_chunk, False),
    Scenario("RSS AR(0.8) wander 1%", MEM, mem_wander, False),
    Scenario("disk rotation, flat floor", DISK, disk_saw(0.0), False),
    Scenario("ramp 0.25%/epoch", SLOW, ramp(0.0025), True),
    Scenario("ramp 0.5%/epoch", SLOW, ramp(0.005), True),
    Scenario("ramp 1%/epoch", SLOW, ramp(0.01), True),
    Scenario("ramp 2%/epoch", SLOW, ramp(0.02), True),
    Scenario("ramp 1% on AR(0.5) 10%", SLOW, ramp(0.01, ar1(0.5)), True),
    Scenario("late ramp 1% (onset 30-60)", SLOW, late_ramp, True),
    Scenario("RSS leak 0.5%/epoch + GC saw", MEM, mem_leak(0.005), True),
    Scenario("GPU staircase 256MiB/4-8 ep", GPU, gpu_staircase, True),
    Scenario("disk sawtooth, rising floor", DISK, disk_saw(0.5), True),
    # short runs (issue 11): blatant faults by epoch 8
    Scenario("RSS leak 5%/epoch + GC saw", MEM, mem_leak(0.05), True),
    Scenario("RSS leak 10%/epoch + GC saw", MEM, mem_leak(0.10), True),
    Scenario("ramp 3%/epoch, 3% noise", SLOW, ramp(0.03, cv=0.03), True),
    Scenario("ramp 3%/epoch, 5% noise", SLOW, ramp(0.03), True),
    Scenario("ramp 5%/epoch, 5% noise", SLOW, ramp(0.05), True),
    Scenario("step 4x at epoch 5", SLOW, step_change(4.0, 5), True),
    Scenario("step 1.6x at epoch 5", SLOW, step_change(1.6, 5), True),
    # sub-epoch intervals of 2-epoch runs (64 intervals)
    Scenario("2 epochs: RSS flat (intervals)", MEM_IV, iv_mem(0.0), False, 2 * IV_PER_EPOCH),
    Scenario("2 epochs: step time flat (intervals)", SLOW_IV, iv_time(0.0), False, 2 * IV_PER_EPOCH),
    Scenario("2 epochs: RSS leak 5%/epoch (intervals)", MEM_IV, iv_mem(0.05), True, 2 * IV_PER_EPOCH),
    Scenario("2 epochs: RSS leak 25%/epoch (intervals)", MEM_IV, iv_mem(0.25), True, 2 * IV_PER_EPOCH),
    Scenario("2 epochs: step time +20%/epoch (intervals)", SLOW_IV, iv_time(0.20), True, 2 * IV_PER_EPOCH),
)


def window(values: list[float], end: int, fam: Family) -> list[float]:
    """The detector's window after epoch `end`, as RunAtEpoch.window builds it (epoch 0 is warm-up)."""
    k = fam.envelope
    want = fam.rule.window + max(0, k - 1)
    vals = values[max(1, end + 1 - want) : end + 1]
    if k > 1:
        vals = trend.running_min(vals, k)[k - 1 :]
    return vals[-fam.rule.window :]


def holds(values: list[float], end: int, fam: Family) -> int | None:
    """The persistence the detector's verdict after `end` needs (None: no verdict), as
    analysis/growth.judge and the slowdown detector decide: the long-run rule, else the
    blatant rule while the run is short, else (time) a step."""
    if trend.assess_growth(window(values, end, fam), fam.rule) is not None:
        return fam.persistence
    usable = values[1 : end + 1]
    if (
        fam.blatant is not None
        and len(usable) <= fam.blatant.span
        and shapes.assess_blatant(usable, fam.blatant) is not None
    ):
        return min(fam.persistence, 2)
    if fam.step is not None and shapes.assess_step(
        values[max(1, end + 1 - fam.step.window) : end + 1], fam.step
    ):
        return 1
    return None


def first_flag(values: list[float], fam: Family) -> int | None:
    streak = 0
    for end in range(1, len(values)):
        need = holds(values, end, fam)
        if need is not None:
            streak += 1
            if streak >= need:
                return end
        else:
            streak = 0
    return None


def _seed(seed: int, name: str) -> int:
    return seed * 1_000_003 + zlib.crc32(name.encode())


def run_scenario(args: tuple[int, int, int, int]) -> dict[str, Any]:
    index, runs, epochs, seed = args
    sc = SCENARIOS[index]
    rng = random.Random(_seed(seed, sc.name))
    flags: list[int | None] = []
    delays: list[int] = []
    t0 = time.process_time()
    n = sc.length if sc.length is not None else epochs + 1
    for _ in range(runs):
        values, onset = sc.gen(rng, n)
        e = first_flag(values, sc.family)
        flags.append(e)
        if e is not None and onset is not None and e >= onset:
            delays.append(e - onset)

    def share(limit: int) -> float:
        return sum(1 for e in flags if e is not None and e <= limit) / runs

    return {
        "name": sc.name,
        "family": sc.family.name,
        "faulty": sc.faulty,
        "intervals": sc.length is not None,
        "by8": share(8),
        "by10": share(10),
        "by30": share(30),
        "by100": share(n - 1),
        "median_delay": statistics.median(delays) if delays else None,
        "cpu_seconds": time.process_time() - t0,
    }


def verify(index: int, runs: int, epochs: int, seed: int) -> tuple[int, int]:
    """Replays runs through OnlineAnalyzer on trace records; returns (agreeing, compared)."""
    import synthetic as syn

    from epochwatch.analysis.online import OnlineAnalyzer

    sc = SCENARIOS[index]
    rng = random.Random(_seed(seed, sc.name))
    agree = 0
    if sc.length is not None:
        return runs, runs  # interval scenarios: the fast path only (their records are not epochs)
    for _ in range(runs):
        values, _onset = sc.gen(rng, epochs + 1)
        fast = first_flag(values, sc.family)

        def make(i: int, values: list[float] = values) -> dict[str, object]:
            v = values[i]
            if sc.family is SLOW:
                return {"seconds": v}
            if sc.family is MEM:
                return {"seconds": 1.0, "host": syn.host_block(v, total=1024 * GIB)}
            if sc.family is GPU:
                dev = {
                    "index": 0,
                    "name": "Fake",
                    "memory_total_bytes": int(1024 * GIB),
                    "process_memory_bytes": int(v),
                }
                return {"seconds": 1.0, "gpu": {"devices": [dev]}}
            return {
                "seconds": 1.0,
                "dirs": {"/nonexistent/bench": {"bytes": int(v), "files": 3, "role": "checkpoint"}},
            }

        online = OnlineAnalyzer()
        slow = None
        for rec in syn.trace(epochs + 1, make, ended=None):
            for f in online.add(rec):
                if f["kind"] == sc.family.kind and slow is None:
                    slow = f["epoch"]
        agree += slow == fast
    return agree, runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--verify", type=int, default=20, help="runs per scenario replayed through OnlineAnalyzer")
    p.add_argument("--only", help="scenarios whose name contains this")
    p.add_argument(
        "--attribution",
        type=int,
        default=200,
        help="runs per attribution scenario (bench/attribution.py); 0: skip",
    )
    a = p.parse_args(argv)
    picked = [i for i, s in enumerate(SCENARIOS) if not a.only or a.only in s.name]
    t0 = time.perf_counter()
    jobs = [(i, a.runs, a.epochs, a.seed) for i in picked]
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as pool:
            results = list(pool.map(run_scenario, jobs))
    else:
        results = [run_scenario(j) for j in jobs]
    print(f"detector benchmark: {a.runs} runs x {a.epochs} epochs per scenario, seed {a.seed}, fast path")
    print()
    print("| scenario | series | flagged by 8 | by 10 | by 30 | by 100 | median delay |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for kind in (False, True):
        for r in results:
            if r["faulty"] != kind or r["intervals"]:
                continue
            delay = "-" if r["median_delay"] is None else f"{r['median_delay']:.0f}"
            print(
                f"| {'FAULTY' if kind else 'healthy'}: {r['name']} | {r['family']} | {100 * r['by8']:.1f}% "
                f"| {100 * r['by10']:.1f}% | {100 * r['by30']:.1f}% | {100 * r['by100']:.1f}% | {delay} |"
            )
    if any(r["intervals"] for r in results):
        print()
        print(
            "| 2-epoch run, 64 intervals | series | flagged before the run ends | median delay (intervals) |"
        )
        print("|---|---|---:|---:|")
        for r in results:
            if r["intervals"]:
                delay = "-" if r["median_delay"] is None else f"{r['median_delay']:.0f}"
                print(
                    f"| {'FAULTY' if r['faulty'] else 'healthy'}: {r['name']} | {r['family']} "
                    f"| {100 * r['by100']:.1f}% | {delay} |"
                )
    wall = time.perf_counter() - t0
    cpu = sum(float(r["cpu_seconds"]) for r in results)
    print()
    print(f"{wall:.1f} s wall, {cpu:.1f} s CPU in the workers")
    ok = True
    by_name = {r["name"]: r for r in results}
    for name, key, limit, above in (
        ("iid noise 3%", "by100", 0.01, False),
        ("iid noise 30%", "by100", 0.01, False),
        ("AR(1) rho 0.5, 10%", "by100", 0.05, False),
        ("ramp 1%/epoch", "by30", 0.95, True),
        ("RSS leak 5%/epoch + GC saw", "by8", 0.95, True),
        ("RSS leak 10%/epoch + GC saw", "by8", 0.95, True),
        ("ramp 3%/epoch, 3% noise", "by8", 0.95, True),
        ("ramp 3%/epoch, 5% noise", "by8", 0.95, True),
        ("step 4x at epoch 5", "by8", 0.95, True),
        ("2 epochs: RSS flat (intervals)", "by100", 0.01, False),
        ("2 epochs: step time flat (intervals)", "by100", 0.01, False),
        ("2 epochs: RSS leak 5%/epoch (intervals)", "by100", 0.95, True),
        ("2 epochs: RSS leak 25%/epoch (intervals)", "by100", 0.95, True),
    ):
        if name in by_name:
            v = float(by_name[name][key])
            good = v >= limit if above else v <= limit
            ok &= good
            print(
                f"target {'>=' if above else '<='} {100 * limit:.0f}% {name} ({key}): {100 * v:.1f}% "
                f"{'met' if good else 'MISSED'}"
            )
    if a.verify:
        agree = total = 0
        for i in picked:
            g, n = verify(i, min(a.verify, a.runs), a.epochs, a.seed)
            agree += g
            total += n
            if g != n:
                print(f"verify: {SCENARIOS[i].name}: online analyzer agreed on {g} of {n} runs")
        print(
            f"verify: the OnlineAnalyzer on trace records flagged the same epoch in {agree} of {total} runs"
        )
        ok &= agree == total
    if a.attribution:
        import attribution

        print()
        ok &= attribution.report(a.attribution, a.seed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
