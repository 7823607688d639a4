"""Which other series moved with a slowdown: the likely causes, ranked.

When epoch time trends up, every other per-epoch series that trends up over the same
epochs (new traces, files in a watched directory, RSS, swap, other processes' CPU, ...)
is a suspect. Suspects are ranked by Kendall's tau between the suspect and the epoch
time over the slowdown's window: a cause that moves with the slowdown epoch by epoch
ranks above one that merely grows alongside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from epochwatch.analysis import trend
from epochwatch.analysis.view import RunAtEpoch, Window

# A suspect must trend itself (one-sided Mann-Kendall, autocorrelation corrected) ...
SUSPECT_ALPHA = 0.01
# ... and move with the epoch time at least this much.
MIN_TAU = 0.3


@dataclass(frozen=True)
class Suspect:
    series: str  # column name
    key: str | None  # device, directory or function, for keyed columns
    label: str  # what a person reads
    direction: int = 1  # -1: the suspect is a drop (e.g. CPU share)


def _suspects(view: RunAtEpoch) -> Iterator[Suspect]:
    s = view.series
    yield Suspect("retrace_new", None, "new tf.function traces per epoch")
    yield Suspect("live_functions", None, "live concrete functions")
    yield Suspect("graph_build", None, "graph building time")
    for path in s.keys("dir_files"):
        yield Suspect("dir_files", path, f"files in {path}")
    for path in s.keys("dir_bytes"):
        yield Suspect("dir_bytes", path, f"bytes in {path}")
    yield Suspect("rss", None, "host RSS")
    yield Suspect("swap", None, "process swap")
    yield Suspect("sys_swap_used", None, "system swap used")
    yield Suspect("contention_cpu", None, "CPU use of other processes")
    yield Suspect("cpu_share", None, "CPU time per wall second (drop)", -1)
    yield Suspect("input_wait", None, "time waiting for input")
    yield Suspect("steps", None, "steps per epoch")
    yield Suspect("val_seconds", None, "validation time")
    yield Suspect("threads", None, "threads")
    yield Suspect("open_fds", None, "open files")
    for dev in s.keys("gpu_throttled"):
        yield Suspect("gpu_throttled", dev, f"GPU {dev} clock throttling")
    for dev in s.keys("tf_current"):
        yield Suspect("tf_current", dev, f"TF memory on {dev}")


def _aligned(view: RunAtEpoch, sus: Suspect, indexes: list[int]) -> list[float]:
    s = view.series
    if sus.series == "cpu_share":
        out = []
        for i in indexes:
            cpu, wall = s.value("cpu_seconds", i), s.value("seconds", i)
            out.append(cpu / wall if cpu == cpu and wall == wall and wall > 0 else float("nan"))
        return out
    return [s.value(sus.series, i, sus.key) for i in indexes]


def likely_causes(view: RunAtEpoch, times: Window, top: int = 3) -> list[dict[str, Any]]:
    """Suspects that trend with the epoch time over `times`, best first."""
    ranked: list[tuple[float, dict[str, Any]]] = []
    for sus in _suspects(view):
        raw = _aligned(view, sus, times.indexes)
        pairs = [(t, sus.direction * v) for t, v in zip(times.values, raw, strict=True) if v == v]
        if len(pairs) < max(8, len(times.values) // 2):
            continue
        ys = [v for _, v in pairs]
        if min(ys) == max(ys):
            continue
        mk = trend.mann_kendall(ys)
        if mk.p_increasing > SUSPECT_ALPHA:
            continue
        tau = trend.kendall_tau([t for t, _ in pairs], ys)
        if tau < MIN_TAU:
            continue
        values = [sus.direction * v for v in ys]
        ranked.append(
            (
                tau,
                {
                    "series": sus.label,
                    "column": sus.series,
                    "key": sus.key,
                    "tau": tau,
                    "p_value": mk.p_increasing,
                    "start": trend.median(values[: max(3, len(values) // 10)]),
                    "now": trend.median(values[-max(3, len(values) // 10) :]),
                },
            )
        )
    ranked.sort(key=lambda item: -item[0])
    return [entry for _, entry in ranked[:top]]
