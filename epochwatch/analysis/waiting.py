"""Waiting or competing: why a process gets less CPU per wall second.

When epochs take longer while the run's CPU time per epoch (its worker processes'
included) stays put, the added time is spent off the CPU. That is contention only if the
CPU was taken from the run: its threads waited on a run queue for longer (the scheduler's
count, read where the kernel keeps it: samplers/cpu_wait.py). Where that is not read, only
other tasks' demand tells: they take more of the CPUs the process may use, busy ones; or
the host's runnable tasks exceed the CPUs, or CPU pressure stall (PSI `some`) rises (as a
trend, or a step when another job starts); or (with the daemon) others use the CPU of a
busy host. Otherwise the process waits: in a sleep, on I/O, a lock or a remote call.
`judge` tells the two apart for a slowdown, and for the waiting where the time went where
the trace can tell (the callbacks' own time, validation, the training steps).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from epochwatch.analysis import trend
from epochwatch.analysis.view import RunAtEpoch, Window

RECENT = 5
TREND_ALPHA = 0.01
PRESSURE_SHARE = 0.05  # share of wall time some task stalled for a CPU, recently
BUSY_HOST_PCT = 85.0
OTHERS_PCT = 100.0
SHARE_DROP = 0.9  # CPU per wall second now at most this share of what it was
CPU_EXPLAINS = 0.5  # added CPU time under half the added wall time: the rest is waiting
WHERE_SHARE = 0.3  # as attribution.ACCOUNT_SHARE
# Demand that steps up: medians 2x apart, the readings after the onset above those before it
# in 90% of pairs, 3 readings on each side at least. Readings under a floor read as the
# floor: below it there is no competition to speak of, and its noise (a stall share of
# 0.9% or 7% on a quiet host) would hide a step.
DEMAND_RATIO = 2.0
DEMAND_SEPARATION = 0.9
DEMAND_SIDE = 3
DEMAND_WINDOW = 60
RUNNABLE_FLOOR = 0.5  # other runnable tasks per CPU
OTHERS_RISE = 0.5  # CPUs' worth more taken by other tasks, on busy CPUs
BUSY_CPUS = 0.8  # /proc/stat counts 10 ms ticks, coarse on short epochs: 80%, not 85%
TIME_FOLLOWS = 1.25  # the time's median after the demand's onset over its median before


def _values(view: RunAtEpoch, name: str, indexes: Sequence[int]) -> list[float]:
    return [v for v in (view.series.value(name, i) for i in indexes) if v == v]


def ends(values: Sequence[float]) -> tuple[float, float]:
    """(start, now): medians of the first and last tenth (at least 3 values each)."""
    k = max(3, len(values) // 10)
    return trend.median(values[:k]), trend.median(values[-k:])


def levels(values: Sequence[float], points: Sequence[int], onset: int | None) -> tuple[float, float]:
    """(before, now): for a step, the medians before and from its onset (a point); else, or
    with fewer than 2 values on a side, `ends`. A step's own split is steadier than its last
    three points: an update one epoch later must not lose what the first evaluation saw."""
    if onset is not None:
        before = [v for v, i in zip(values, points, strict=True) if i < onset]
        after = [v for v, i in zip(values, points, strict=True) if i >= onset]
        if len(before) >= 2 and len(after) >= 2:
            return trend.median(before), trend.median(after)
    return ends(values)


def share_of_added_time(view: RunAtEpoch, name: str, key: str | None, times: Window) -> float | None:
    """The part of the time's growth over `times` that a seconds series inside the epoch
    grew by: the ratio of their Theil-Sen slopes (robust to the odd slow epoch of a busy
    host, where medians of the window's ends are not). None: too few values, or no growth."""
    pairs = [(i, view.series.value(name, i, key)) for i in times.indexes]
    pairs = [(i, v) for i, v in pairs if v == v]
    if len(pairs) < max(6, len(times.indexes) // 2):
        return None
    time_slope = trend.theil_sen(times.values, [float(i) for i in times.indexes]).slope
    if time_slope <= 0:
        return None
    slope = trend.theil_sen([v for _, v in pairs], [float(i) for i, _ in pairs]).slope
    return slope / time_slope


def _rises(values: Sequence[float]) -> bool:
    return (
        len(values) >= 8
        and min(values) != max(values)
        and trend.mann_kendall(values).p_increasing < TREND_ALPHA
    )


def _stepped_up(points: Sequence[tuple[int, float, float]], floor: float) -> tuple[int, float, float] | None:
    """A lasting step up of demand that the time moved with: the point it began at and the
    readings' medians before and after it; or None. `points`: (point, reading, wall seconds).

    Another job starting on the host is a step, not a trend: the trend test reads a step as
    autocorrelated noise (a healthy fit beside two busy loops from its 7th epoch: PSI stall
    share 0.03-0.10 -> 0.4-0.6, p 0.28) and the slowdown it caused was said critical. The
    split is the one whose readings after it are above those before it most often (rank
    separation: one odd reading, such as an epoch slow for its own reasons, does not undo
    it), their medians DEMAND_RATIO apart, the last ones still high. It counts when the
    time after its onset is also higher: demand that rose long before the time did is not
    what slowed it."""
    points = list(points)[-DEMAND_WINDOW:]
    values = [max(v, floor) for _, v, _ in points]
    n = len(values)
    best: tuple[float, int] | None = None
    for k in range(DEMAND_SIDE, n - DEMAND_SIDE + 1):
        before = sorted(values[:k])
        after = values[k:]
        if trend.median(after) < DEMAND_RATIO * trend.median(before):
            continue
        higher = sum(bisect.bisect_left(before, v) for v in after) / (k * (n - k))
        if higher >= DEMAND_SEPARATION and (best is None or higher > best[0]):
            best = (higher, k)
    if best is None:
        return None
    k = best[1]
    if trend.median(values[-DEMAND_SIDE:]) < DEMAND_RATIO * trend.median(values[:k]):
        return None  # it did not last: the newest readings are back down
    walls = [w for _, _, w in points]
    if trend.median(walls[k:]) < TIME_FOLLOWS * trend.median(walls[:k]):
        return None
    raw = [v for _, v, _ in points]
    return points[k][0], trend.median(raw[:k]), trend.median(raw[k:])


def _run_cpu(view: RunAtEpoch, i: int) -> float:
    """The run's own CPU seconds at a point: the process's, and its worker processes' where
    the trace has them (a PyDataset's workers doing more each epoch are the run's work)."""
    workers = view.series.value("children_cpu", i)
    return view.series.value("cpu_seconds", i) + (workers if workers == workers else 0.0)


def _others_took(view: RunAtEpoch, idx: Sequence[int], onset: int | None) -> dict[str, Any] | None:
    """Other tasks took OTHERS_RISE of a CPU more of the CPUs this process may use, which
    are busy (BUSY_CPUS) now: the host got busier, whatever the stall readings say
    (their share falls as the epochs lengthen, and they count the process's own threads);
    else None. From each point's `cpus_busy_seconds` less its own `cpu_seconds` and its
    worker processes' `children_cpu_seconds`."""
    others, busy, points = [], [], []
    for i in idx:
        taken, own = view.series.value("cpus_busy", i), _run_cpu(view, i)
        wall, cpus = view.series.value("seconds", i), view.series.value("cpus", i)
        if taken == taken and own == own and wall == wall and cpus == cpus and wall > 0 and cpus > 0:
            others.append(max(0.0, taken - own) / wall)
            busy.append(taken / (wall * cpus))
            points.append(i)
    if len(others) < 6:
        return None
    start, now = levels(others, points, onset)
    loaded = levels(busy, points, onset)[1]
    if now - start < OTHERS_RISE or loaded < BUSY_CPUS:
        return None
    return {
        "evidence": "CPUs taken by other tasks",
        "others_cpus": [round(start, 2), round(now, 2)],
        "cpus_busy_share": round(loaded, 2),
    }


def _waited_for_cpu(view: RunAtEpoch, idx: Sequence[int], onset: int | None) -> dict[str, Any] | None:
    """What the process's threads' own wait for a CPU says, where the trace has it: evidence
    that the CPU was taken from the run (the wait grew by CPU_EXPLAINS of the added time or
    more), {} where it was not (the added time is not spent waiting for a CPU, whatever the
    host's load), None where there are too few readings to tell."""
    waits, walls, points = [], [], []
    for i in idx:
        waited, wall = view.series.value("cpu_wait", i), view.series.value("seconds", i)
        if waited == waited and wall == wall and wall > 0:
            waits.append(waited)
            walls.append(wall)
            points.append(i)
    if len(points) < max(6, len(idx) // 2):
        return None
    w_start, w_now = levels(waits, points, onset)
    t_start, t_now = levels(walls, points, onset)
    if t_now <= t_start or w_now - w_start < CPU_EXPLAINS * (t_now - t_start):
        return {}
    return {
        "evidence": "the seconds its threads waited for a CPU",
        "cpu_wait": [round(w_start, 3), round(w_now, 3)],
    }


def competing(view: RunAtEpoch, indexes: Sequence[int], onset: int | None = None) -> dict[str, Any] | None:
    """Evidence that other tasks want the CPU over these epochs, or None.

    A level alone is not enough for the hook's own readings (a shared build machine is
    always loaded): the demand must rise over the window, as a trend or a lasting step
    that the time moved with, as the CPU share falls.
    """
    idx = list(indexes)
    recent = idx[-RECENT:]
    others = _values(view, "contention_cpu", recent)
    host = _values(view, "host_cpu_pct", recent)
    if others and host and trend.median(others) >= OTHERS_PCT and trend.median(host) >= BUSY_HOST_PCT:
        return {
            "evidence": "daemon samples",
            "others_cpu_pct": trend.median(others),
            "host_cpu_pct": trend.median(host),
        }
    taken = _others_took(view, idx, onset)
    if taken is not None:
        return taken
    shares: list[tuple[int, float, float]] = []  # (point, reading, wall seconds)
    per_cpu: list[tuple[int, float, float]] = []
    for i in idx:
        wall = view.series.value("seconds", i)
        if not (wall == wall and wall > 0):
            continue
        stall = view.series.value("cpu_pressure", i)
        if stall == stall:
            shares.append((i, min(1.0, stall / wall), wall))
        runnable, cpus = view.series.value("runnable", i), view.series.value("cpus", i)
        if runnable == runnable and cpus == cpus and cpus > 0:
            per_cpu.append((i, (runnable - 1) / cpus, wall))  # the reader itself is one of them
    # Stall: a rise to a share of the time that matters; runnable: more tasks than CPUs.
    for points, enough, floor, evidence, name in (
        (
            shares,
            lambda v: v >= PRESSURE_SHARE,
            PRESSURE_SHARE,
            "CPU pressure stall (PSI some)",
            "stall_share",
        ),
        (per_cpu, lambda v: v > 1.0, RUNNABLE_FLOOR, "runnable tasks per CPU", "runnable_per_cpu"),
    ):
        values = [v for _, v, _ in points]
        if values and _rises(values) and enough(ends(values)[1]):
            start, now = ends(values)
            return {"evidence": evidence, name: [round(start, 3), round(now, 3)]}
        step = _stepped_up(points, floor)
        if step is not None and enough(step[2]):
            at, before, after = step
            return {
                "evidence": evidence,
                name: [round(before, 3), round(after, 3)],
                "shape": "step",
                "onset_epoch": view.epoch_number(at),
            }
    return None


# A host loaded all along: more runnable tasks than CPUs, or tasks stalled for a CPU a
# quarter of the time, at the median of the points read.
LOADED_RUNNABLE = 1.0
LOADED_STALL = 0.25


def loaded_all_along(view: RunAtEpoch, indexes: Sequence[int]) -> bool:
    """Whether other tasks wanted the CPU at a steady high level over these points. It is no
    evidence that they caused a slowdown (a shared machine is always loaded, and its load did
    not rise), but a title must not then say that nobody competes: a healthy fit among a test
    suite's workers on two cores read "nobody competes for the CPU"."""
    stalls, runnable = [], []
    for i in indexes:
        wall, stall = view.series.value("seconds", i), view.series.value("cpu_pressure", i)
        tasks, cpus = view.series.value("runnable", i), view.series.value("cpus", i)
        if wall == wall and wall > 0 and stall == stall:
            stalls.append(min(1.0, stall / wall))
        if tasks == tasks and cpus == cpus and cpus > 0:
            runnable.append((tasks - 1) / cpus)
    return bool(
        (stalls and trend.median(stalls) >= LOADED_STALL)
        or (runnable and trend.median(runnable) > LOADED_RUNNABLE)
    )


def has_demand_readings(view: RunAtEpoch, indexes: Sequence[int]) -> bool:
    """Whether the trace carries any reading of CPU demand (else nothing can be told)."""
    return any(
        _values(view, name, indexes[-RECENT:])
        for name in ("cpus_busy", "cpu_pressure", "runnable", "host_cpu_pct")
    )


def _where(view: RunAtEpoch, times: Window) -> dict[str, Any]:
    """Which part of the epoch took the added time: a callback, validation, or the steps."""
    parts = [
        ("cb_seconds", name, f"callback {name} (on_epoch_end)") for name in view.series.keys("cb_seconds")
    ]
    best: tuple[float, str] | None = None
    for group in (
        parts,
        [("callback_seconds", None, "the callbacks (on_epoch_end)"), ("val_seconds", None, "validation")],
    ):
        for name, key, what in group:
            share = share_of_added_time(view, name, key, times)
            if share is not None and share >= WHERE_SHARE and (best is None or share > best[0]):
                best = (share, what)
        if best is not None:
            break
    if best is None:
        steps = _values(view, "steps", times.indexes)
        share = share_of_added_time(view, "step_median", None, times)
        if share is not None and steps and share * trend.median(steps) >= WHERE_SHARE:
            best = (share * trend.median(steps), "the training steps")
    if best is None:
        return {
            "where": "not in the callbacks, validation or the steps the trace times (input, or between steps)"
        }
    return {"where": best[1], "share_of_added_time": round(min(best[0], 9.99), 3)}


def own_work_explains(cpu: tuple[float, float], wall: tuple[float, float]) -> bool:
    """Whether the process's own added CPU work accounts for CPU_EXPLAINS of the added wall
    time, at the CPU share it had at the start where that was under a core: a compiled step
    doing 20 more loops each epoch on a loaded two-core host went from 84 to 418 ms of CPU
    an epoch (5x) and from 137 to 814 ms of wall time, at 0.6 CPU per wall second before any
    of it; its raw added CPU, 49% of the added time, read "the host got busier while the
    process's own CPU per epoch stayed 84ms -> 418ms" (info)."""
    (c_start, c_now), (t_start, t_now) = cpu, wall
    if t_now <= t_start:
        return True
    share = c_start / t_start if t_start > 0 and c_start > 0 else 1.0
    return (c_now - c_start) / min(1.0, share) >= CPU_EXPLAINS * (t_now - t_start)


def _off_cpu(
    view: RunAtEpoch, times: Window, onset: int | None, least: int = 8
) -> tuple[list[int], dict[str, Any]] | None:
    """When the time grew but the process's own CPU time per point did not account for it
    (its CPU per wall second fell): the points read and the CPU numbers; else None."""
    idx, ts = [], []
    cpu = []
    for i in times.indexes:
        c = _run_cpu(view, i)
        wall = view.series.value("seconds", i)
        if c == c and c > 0 and wall == wall and wall > 0:
            idx.append(i)
            ts.append(wall)
            cpu.append(c)
    if len(idx) < max(least, len(times.indexes) // 2):
        return None
    share = [c / t for c, t in zip(cpu, ts, strict=True)]
    s_start, s_now = levels(share, idx, onset)
    t_start, t_now = levels(ts, idx, onset)
    c_start, c_now = levels(cpu, idx, onset)
    if s_start <= 0 or s_now > SHARE_DROP * s_start or t_now <= t_start:
        return None
    if own_work_explains((c_start, c_now), (t_start, t_now)):
        return None  # the added time is mostly CPU work: the process itself does more
    return idx, {
        "cpu_per_wall_second": [round(s_start, 3), round(s_now, 3)],
        f"cpu_seconds_per_{'fit' if view.unit == 'fit' else 'epoch'}": [round(c_start, 4), round(c_now, 4)],
    }


def judge(
    view: RunAtEpoch, times: Window, onset: int | None = None, least: int = 8
) -> tuple[str, dict[str, Any]] | None:
    """When the added time is not the process's own CPU work: ("busier", the CPU numbers and
    the evidence of competition) when its threads waited for a CPU longer, or (where that is
    not read) other tasks want the CPU more and more over the same points (the host got
    busier: a slowdown that is not the run's doing), else ("waits",
    the CPU numbers and where the process waits). None when the added time is CPU work.
    `least`: the points with CPU readings it needs."""
    off = _off_cpu(view, times, onset, least)
    if off is None:
        return None
    idx, out = off
    # The threads' own wait for a CPU, where read, decides: the CPU taken from the run, not
    # only wanted by others.
    waited = _waited_for_cpu(view, idx, onset)
    rivals = competing(view, idx, onset) if waited is None else waited or None
    if rivals is not None:
        return "busier", {**out, "competition": rivals}
    if waited is not None:
        out["competition"] = "not taken"
    elif not has_demand_readings(view, idx):
        out["competition"] = "not measured"
    else:
        out["competition"] = "steady" if loaded_all_along(view, idx) else "none seen"
    out.update(_where(view, times))
    return "waits", out
