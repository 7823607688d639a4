"""host_contention: other processes take the CPU this run needs.

Two signals. With the daemon's samples (`sample.contention`): the host is busy
(host_cpu_pct >= BUSY_HOST_PCT) and other processes use at least OTHERS_PCT of a core,
averaged per epoch, in each of the last RECENT epochs. From the epochs alone (no
daemon, CPU-only runs): the process's CPU time per wall second of epoch keeps falling
(the growth rule on wall seconds per CPU second) while its CPU time per epoch, the work
itself, does not grow, *and* other tasks want the CPU (waiting.competing: runnable tasks
or CPU pressure stall rising with it). Without that evidence the process is waiting (a
sleep, I/O, a lock), not competing, and the slowdown finding says so instead.
"""

from __future__ import annotations

import math
from typing import Any

from epochwatch.analysis import frameworks
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import INFO, WARNING, Finding
from epochwatch.analysis.leaks import growth_evidence
from epochwatch.analysis.trend import GrowthRule, assess_growth, median
from epochwatch.analysis.view import RunAtEpoch, Window, window_epochs
from epochwatch.analysis.waiting import competing

KIND = "host_contention"
RECENT = 3
BUSY_HOST_PCT = 85.0
OTHERS_PCT = 100.0
RULE = GrowthRule(min_rel_slope=0.002, min_rel_growth=0.10)
PERSISTENCE = 2
UNNAMED = "another user's process"  # the daemon names only the run's own user's processes
HINT = (
    "other processes compete for the CPU: find them (`epochwatch status`, top), move them or this "
    "job, pin with taskset/cgroups, or lower tf.config.threading.set_inter_op_parallelism_threads / "
    "set_intra_op_parallelism_threads and tf.data num_parallel_calls to the cores that are free"
)


def _hint(view: RunAtEpoch) -> str:
    return frameworks.hint(KIND, frameworks.framework(view.start), HINT)


def _sampled(view: RunAtEpoch) -> Finding | None:
    idx = list(view.series.indexes(view.end, RECENT, warm=True))
    if len(idx) < RECENT:
        return None
    others = [view.value("contention_cpu", i) for i in idx]
    host = [view.value("host_cpu_pct", i) for i in idx]
    if any(o != o or o < OTHERS_PCT for o in others):
        return None
    if any(h == h and h < BUSY_HOST_PCT for h in host):
        return None
    evidence: dict[str, Any] = {
        "others_cpu_pct": median(others),
        "host_cpu_pct": median([h for h in host if h == h]) if any(h == h for h in host) else None,
        "epochs": window_epochs(view, idx),
        "source": "daemon samples",
    }
    busiest = _busiest(view)
    if busiest:
        evidence["busiest"] = busiest
    title = f"other processes use {median(others):.0f}% CPU while the host is busy"
    if busiest:
        title += f" (busiest: {busiest[0]['name'] or UNNAMED})"
    return Finding(KIND, WARNING, title, evidence, _hint(view), "cpu", view.epoch_number(view.last))


def _busiest(view: RunAtEpoch) -> list[dict[str, Any]]:
    for sample in reversed(view.run.recent_samples):
        cont = sample.get("contention")
        if isinstance(cont, dict) and isinstance(cont.get("cpu"), list):
            return [
                {"name": e.get("name"), "pid": e.get("pid"), "cpu_pct": e.get("cpu_pct")}
                for e in cont["cpu"][:3]
                if isinstance(e, dict)
            ]
    return []


def _cpu_share(view: RunAtEpoch) -> Finding | None:
    if view.series.keys("gpu_total") or view.series.keys("tf_current"):
        return None  # GPU time is not CPU time: a GPU run's CPU share says little
    secs = view.window("seconds", size=RULE.window)
    wall_per_cpu: list[float] = []
    cpu: list[float] = []
    indexes: list[int] = []
    for i, wall in zip(secs.indexes, secs.values, strict=True):
        c = view.value("cpu_seconds", i)
        if c == c and c > 0:
            wall_per_cpu.append(wall / c)
            cpu.append(c)
            indexes.append(i)
    g = assess_growth(wall_per_cpu, RULE)
    if g is None:
        return None
    if assess_growth(cpu, GrowthRule(alpha=0.05, min_rel_growth=0.0, step_ratio=0.0)) is not None:
        return None  # the work itself grows: not contention
    demand = competing(view, indexes)
    if demand is None:
        return None  # less CPU per second with nobody wanting the CPU: waiting, not contention
    w = Window(wall_per_cpu, indexes)
    evidence = growth_evidence(view, g, w, math.nan)  # the fitted line: a ratio is noisy
    evidence["source"] = "epoch CPU time vs wall time"
    evidence["cpu_seconds_per_epoch"] = median(cpu[-5:])
    evidence["competition"] = demand
    title = (
        f"the process gets less CPU per wall second: {1 / evidence['start']:.2f} -> {1 / evidence['now']:.2f} CPU-seconds "
        f"per second over epochs {evidence['epochs'][0] + 1}-{evidence['epochs'][-1] + 1}, for the same work"
    )
    # An inference from the hook's own readings, hence info, not warning.
    return Finding(KIND, INFO, title, evidence, _hint(view), "cpu", view.epoch_number(view.last))


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.done(KIND, "cpu"):
        return []
    f = _sampled(view) or _cpu_share(view)
    return [f] if f is not None else []


DETECTOR = Detector(name=KIND, detect=detect, persistence=PERSISTENCE)
