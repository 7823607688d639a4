"""Attribution benchmark: is a series that rises beside a slowdown, without causing it, named?

Each scenario makes runs whose epoch time ramps up 1% per epoch (noise 5%) while a second
series rises on its own: files in a checkpoint directory (linear, or a staircase of saves),
RSS (a drifting random walk), other processes' CPU on a host that is not busy. The run
goes through the real slowdown detector (trace records -> Run -> Engine); a run counts as
a false attribution when the bystander is among the finding's `likely_causes`. Target:
not named in at least 95% of the runs that got a slowdown. Two scenarios with a real
cause (a callback whose own time grows; swap whose epoch-to-epoch jumps drive the time)
show the tests still name what does explain the slowdown.

    python bench/attribution.py [--runs 200] [--seed 1]
(bench/detectors.py runs it too.)
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import synthetic as syn

from epochwatch.analysis import attribution
from epochwatch.analysis.detectors import slowdown
from epochwatch.analysis.engine import analyze
from epochwatch.analysis.run import Run

EPOCHS = 60
Make = Callable[[random.Random], Callable[[int], dict[str, Any]]]


def _time(rng: random.Random, i: int) -> float:
    return syn.noisy(rng, 1.0 + 0.01 * i, 0.05)


def files_linear(rng: random.Random) -> Callable[[int], dict[str, Any]]:
    def make(i: int) -> dict[str, Any]:
        block = {
            "bytes": 10_000 * i + rng.randint(0, 999),
            "files": 2 * i + rng.randint(0, 1),
            "role": "checkpoint",
        }
        return {"seconds": _time(rng, i), "dirs": {"/ckpt": block}}

    return make


def files_staircase(rng: random.Random) -> Callable[[int], dict[str, Any]]:
    every = rng.randint(3, 7)

    def make(i: int) -> dict[str, Any]:
        saved = i // every
        return {
            "seconds": _time(rng, i),
            "dirs": {"/ckpt": {"bytes": 50_000 * saved, "files": saved, "role": "checkpoint"}},
        }

    return make


def rss_walk(rng: random.Random) -> Callable[[int], dict[str, Any]]:
    rss = [2.0 * syn.GIB]

    def make(i: int) -> dict[str, Any]:
        rss.append(rss[-1] + rng.gauss(8, 8) * syn.MIB)
        return {"seconds": _time(rng, i), "host": syn.host_block(rss[-1])}

    return make


def others_cpu_idle_host(rng: random.Random) -> Callable[[int], dict[str, Any]]:
    def make(i: int) -> dict[str, Any]:
        others = 20.0 + 2.0 * i + rng.gauss(0, 5)
        return {
            "seconds": _time(rng, i),
            "_sample": {
                "host_cpu_pct": 40.0 + rng.gauss(0, 3),
                "cpu": [{"pid": 7, "name": "x", "cpu_pct": others}],
            },
        }

    return make


def callback_cause(rng: random.Random) -> Callable[[int], dict[str, Any]]:
    def make(i: int) -> dict[str, Any]:
        own = 0.02 * i * rng.uniform(0.8, 1.2)
        seconds = syn.noisy(rng, 1.0, 0.05) + own
        return {"seconds": seconds, "callbacks": {"seconds": own, "by_class": {"Uploader": own}}}

    return make


def swap_cause(rng: random.Random) -> Callable[[int], dict[str, Any]]:
    swap = [0.0]

    def make(i: int) -> dict[str, Any]:
        swap.append(swap[-1] + (50 * syn.MIB if rng.random() < 0.3 else 0.0))  # swapped out in bursts
        seconds = syn.noisy(rng, 1.0, 0.03) + swap[-1] / (500 * syn.MIB)
        return {"seconds": seconds, "host": syn.host_block(2 * syn.GIB, swap=swap[-1])}

    return make


@dataclass(frozen=True)
class Scenario:
    name: str
    make: Make
    columns: tuple[str, ...]  # likely_causes columns that name the second series
    causal: bool


SCENARIOS = (
    Scenario("files in a checkpoint dir, linear", files_linear, ("dir_files", "dir_bytes"), False),
    Scenario("checkpoint saves, a staircase", files_staircase, ("dir_files", "dir_bytes"), False),
    Scenario("RSS, a drifting random walk", rss_walk, ("rss",), False),
    Scenario("others' CPU, host not busy", others_cpu_idle_host, ("contention_cpu",), False),
    Scenario("CAUSE: a callback's own time", callback_cause, ("cb_seconds", "callback_seconds"), True),
    Scenario("CAUSE: swap jumps drive the time", swap_cause, ("swap",), True),
)


def _records(make: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for rec in syn.trace(EPOCHS, make):
        sample = rec.pop("_sample", None)
        if sample is not None:
            out.append({"type": "sample", "run_id": rec["run_id"], "t": rec["start"], "contention": sample})
        out.append(rec)
    return out


def _co_trend_only(on: bool) -> None:
    """Switch the attribution back to the old rule (trend together = cause), for comparison."""
    if on:
        attribution._saved = (attribution._TESTS, attribution._associated)  # type: ignore[attr-defined]
        attribution._TESTS = {}
        attribution._associated = lambda *args: {"test": "co-trend"}
    else:
        attribution._TESTS, attribution._associated = attribution._saved  # type: ignore[attr-defined]


def run_scenario(sc: Scenario, runs: int, seed: int) -> tuple[int, int]:
    """(runs with a slowdown, of which the second series was named)."""
    rng = random.Random(seed * 1_000_003 + zlib.crc32(sc.name.encode()))
    slowed = named = 0
    for _ in range(runs):
        run = Run("bench")
        for rec in _records(sc.make(rng)):
            run.add(rec)
        found = analyze(run, [slowdown.DETECTOR])
        if not found:
            continue
        slowed += 1
        causes = found[0].evidence.get("likely_causes") or []
        named += any(c.get("column") in sc.columns for c in causes)
    return slowed, named


def report(runs: int, seed: int) -> bool:
    """Prints one line per scenario and the target; True when the target is met."""
    t0 = time.perf_counter()
    ok = True
    print(f"attribution: {runs} runs x {EPOCHS} epochs per scenario, seed {seed}, real slowdown detector")
    print("| scenario | runs with a slowdown | second series named | by co-trend alone (old rule) | target |")
    print("|---|---:|---:|---:|---|")
    for sc in SCENARIOS:
        slowed, named = run_scenario(sc, runs, seed)
        share = named / slowed if slowed else math.nan
        _co_trend_only(True)
        try:
            old_slowed, old_named = run_scenario(sc, runs, seed)
        finally:
            _co_trend_only(False)
        old = old_named / old_slowed if old_slowed else math.nan
        if sc.causal:
            verdict = "(a real cause: named is right)"
        else:
            met = slowed > 0 and share <= 0.05
            ok &= met
            verdict = f"not named in >= 95%: {'met' if met else 'MISSED'}"
        print(f"| {sc.name} | {slowed} of {runs} | {100 * share:.1f}% | {100 * old:.1f}% | {verdict} |")
    print(f"{time.perf_counter() - t0:.1f} s")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    return 0 if report(a.runs, a.seed) else 1


if __name__ == "__main__":
    sys.exit(main())
