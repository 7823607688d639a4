"""Which other series explain a slowdown: the likely causes, each with the test it passed.

Two series that both rise over the same epochs correlate whatever their relation, so
sharing a direction proves nothing (files in a checkpoint directory "explain" any
slowdown). A suspect must first trend with the time (one-sided Mann-Kendall, tau >= MIN_TAU,
as a screen), and then pass one test that a sceptic accepts:

- `accounts`: the suspect is time spent inside the epoch (graph building, validation,
  the callbacks' own time) or scales it (steps per epoch), and its growth accounts for at
  least ACCOUNT_SHARE of the epoch time's growth (Theil-Sen slopes, robust to odd slow epochs);
- `mechanism`: a known mechanism ties it to the time: others compute on a GPU this run
  uses; others take the CPU of a busy host; new traces whose graph building accounts for
  the growth; a watched directory that grows while the added time is in the callbacks
  (which list or scan it);
- `differences`: epoch-to-epoch changes of the suspect go with changes of the time
  (Kendall's tau of first differences), or
- `detrended`: their deviations from their own trend lines go together;
  both with the variance of tau widened for the series' autocorrelation (Bartlett), at
  ASSOC_ALPHA each, so two independent rising series pass about 1% of the time.

The evidence says which test passed and with what numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from epochwatch.analysis import trend
from epochwatch.analysis.view import RunAtEpoch, Window
from epochwatch.analysis.waiting import BUSY_HOST_PCT, ends, share_of_added_time

# The screen: a suspect must trend itself (one-sided Mann-Kendall, autocorrelation corrected) ...
SUSPECT_ALPHA = 0.01
# ... and move with the epoch time at least this much.
MIN_TAU = 0.3
# The tests.
ACCOUNT_SHARE = 0.3
MAJORITY = 0.5  # a suspect holding this share of the added time leads the list
ASSOC_ALPHA = 0.005
MAX_LAG = 10


@dataclass(frozen=True)
class Suspect:
    series: str  # column name
    key: str | None  # device, directory, function or callback, for keyed columns
    label: str  # what a person reads
    direction: int = 1  # -1: the suspect is a drop
    test: str = "association"  # "accounts", "mechanism" or "association" (statistics only)


def _suspects(view: RunAtEpoch) -> Iterator[Suspect]:
    s = view.series
    yield Suspect("graph_build", None, "graph building time", test="accounts")
    yield Suspect("val_seconds", None, "validation time", test="accounts")
    yield Suspect("input_wait", None, "time waiting for input", test="accounts")
    yield Suspect("callback_seconds", None, "the callbacks' own time", test="accounts")
    for name in s.keys("cb_seconds"):
        yield Suspect("cb_seconds", name, f"time in callback {name}", test="accounts")
    yield Suspect("steps", None, "steps per epoch", test="accounts")
    yield Suspect("retrace_new", None, "new tf.function traces per epoch", test="mechanism")
    yield Suspect("live_functions", None, "live concrete functions", test="mechanism")
    for dev in s.keys("gpu_others_sm"):
        yield Suspect("gpu_others_sm", dev, f"other processes computing on GPU {dev}", test="mechanism")
    yield Suspect("contention_cpu", None, "CPU use of other processes", test="mechanism")
    for path in s.keys("dir_files"):
        yield Suspect("dir_files", path, f"files in {path}", test="mechanism")
    for path in s.keys("dir_bytes"):
        yield Suspect("dir_bytes", path, f"bytes in {path}", test="mechanism")
    yield Suspect("rss", None, "host RSS")
    yield Suspect("swap", None, "process swap")
    yield Suspect("sys_swap_used", None, "system swap used")
    yield Suspect("threads", None, "threads")
    yield Suspect("open_fds", None, "open files")
    for dev in s.keys("gpu_throttled"):
        yield Suspect("gpu_throttled", dev, f"GPU {dev} clock throttling")
    for dev in s.keys("tf_current"):
        yield Suspect("tf_current", dev, f"TF memory on {dev}")


def _accounts(view: RunAtEpoch, sus: Suspect, times: Window, measure: str) -> dict[str, Any] | None:
    """Share of the time's growth that the suspect accounts for, when it is time inside the epoch."""
    if measure != "seconds":
        return None  # validation, graph building and epoch-end callbacks are outside the step
    t_start, t_now = ends(times.values)
    added = t_now - t_start
    if added <= 0:
        return None
    if sus.series == "steps":
        steps = [view.series.value("steps", i) for i in times.indexes]
        steps = [v for v in steps if v == v and v > 0]
        if len(steps) < len(times.indexes) // 2:
            return None
        s_start, s_now = ends(steps)
        share: float | None = t_start * (s_now / s_start - 1.0) / added if s_start > 0 else None
    else:
        share = share_of_added_time(view, sus.series, sus.key, times)
    if share is None or share < ACCOUNT_SHARE:
        return None
    return {"test": "accounts", "share_of_added_time": round(min(share, 9.99), 3)}


def uses_device(view: RunAtEpoch, device: str, indexes: list[int]) -> bool:
    """Whether the run itself is on `device` in these epochs (NVML listed it there)."""
    for i in indexes:
        own = view.value("gpu_self_sm", i, device)
        mem = view.value("gpu_proc", i, device)
        if own == own or (mem == mem and mem > 0):
            return True
    return False


def _mechanism(view: RunAtEpoch, sus: Suspect, times: Window, measure: str) -> dict[str, Any] | None:
    idx = times.indexes
    if sus.series == "gpu_others_sm":
        if sus.key is not None and uses_device(view, sus.key, idx[-10:]):
            return {"test": "mechanism", "mechanism": f"they share GPU {sus.key} with this run"}
        return None
    if sus.series == "contention_cpu":
        host = [view.series.value("host_cpu_pct", i) for i in idx[-10:]]
        host = [h for h in host if h == h]
        if host and trend.median(host) >= BUSY_HOST_PCT:
            return {"test": "mechanism", "mechanism": "they take CPU on a host that is busy"}
        return None
    if sus.series in ("retrace_new", "live_functions"):
        build = _accounts(view, Suspect("graph_build", None, ""), times, measure)
        if build is not None:
            share = build["share_of_added_time"]
            return {"test": "mechanism", "mechanism": "building the new graphs takes the added time"} | {
                "share_of_added_time": share
            }
        return None
    if sus.series in ("dir_files", "dir_bytes"):
        # The callback that took the most of the added time, else all callbacks together.
        best: tuple[float, str] | None = None
        for key in view.series.keys("cb_seconds"):
            got = _accounts(view, Suspect("cb_seconds", key, ""), times, measure)
            if got is not None and (best is None or got["share_of_added_time"] > best[0]):
                best = (got["share_of_added_time"], f"callback {key}")
        if best is None:
            got = _accounts(view, Suspect("callback_seconds", None, ""), times, measure)
            if got is not None:
                best = (got["share_of_added_time"], "the callbacks")
        if best is not None:
            return {
                "test": "mechanism",
                "mechanism": f"the added time is in {best[1]}, which can list or scan the directory",
                "share_of_added_time": best[0],
            }
        return None
    return None


# -- association beyond a shared direction ---------------------------------------------------


def association(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(Kendall's tau, one-sided p) of a and b, the variance widened by the two series'
    shared autocorrelation (Bartlett: 1 + 2 * sum_k rho_a(k) rho_b(k), never below 1)."""
    n = len(a)
    if n < 8 or len(set(a)) < 3 or len(set(b)) < 3:
        return 0.0, 1.0
    tau = trend.kendall_tau(a, b)
    lags = min(MAX_LAG, n // 4)
    inflation = 1.0 + 2.0 * sum(x * y for x, y in zip(trend.acf(a, lags), trend.acf(b, lags), strict=True))
    var = 2.0 * (2 * n + 5) / (9.0 * n * (n - 1)) * max(1.0, inflation)
    return tau, trend.normal_sf(tau / math.sqrt(var))


def _detrended(values: Sequence[float], xs: Sequence[float]) -> list[float]:
    line = trend.theil_sen(values, xs)
    return [v - (line.intercept + line.slope * x) for v, x in zip(values, xs, strict=True)]


def _associated(xs: list[float], ts: list[float], ys: list[float]) -> dict[str, Any] | None:
    dt = [b - a for a, b in itertools.pairwise(ts)]
    dy = [b - a for a, b in itertools.pairwise(ys)]
    tau, p = association(dy, dt)
    if p < ASSOC_ALPHA and tau > 0:
        return {"test": "differences", "tau_differences": round(tau, 3), "p_differences": p}
    tau, p = association(_detrended(ys, xs), _detrended(ts, xs))
    if p < ASSOC_ALPHA and tau > 0:
        return {"test": "detrended", "tau_detrended": round(tau, 3), "p_detrended": p}
    return None


Check = Callable[[RunAtEpoch, Suspect, Window, str], "dict[str, Any] | None"]
_TESTS: dict[str, Check] = {"accounts": _accounts, "mechanism": _mechanism}


def likely_causes(
    view: RunAtEpoch, times: Window, top: int = 3, measure: str = "seconds"
) -> list[dict[str, Any]]:
    """Suspects that trend with the time over `times` and pass a test, best first.

    `measure` is the column `times` holds: "seconds" (epoch time) or "step_median".
    """
    ranked: list[tuple[int, float, float, dict[str, Any]]] = []
    for sus in _suspects(view):
        raw = [view.series.value(sus.series, i, sus.key) for i in times.indexes]
        rows = [
            (i, t, sus.direction * v)
            for i, t, v in zip(times.indexes, times.values, raw, strict=True)
            if v == v
        ]
        if len(rows) < max(8, len(times.values) // 2):
            continue
        ys = [v for _, _, v in rows]
        if min(ys) == max(ys):
            continue
        # A smooth rise (a ramp, a staircase) has strongly autocorrelated residuals, which
        # the corrected test discounts; a suspect with a direct test after the screen needs
        # only the plain trend.
        mk = trend.mann_kendall(ys, autocorr=sus.test == "association")
        if mk.p_increasing > SUSPECT_ALPHA:
            continue
        ts = [t for _, t, _ in rows]
        tau = trend.kendall_tau(ts, ys)
        if tau < MIN_TAU:
            continue
        passed = None
        special = _TESTS.get(sus.test)
        if special is not None:
            passed = special(view, sus, times, measure)
        if passed is None and not (sus.series in ("dir_files", "dir_bytes") and _shared_dir(view, sus.key)):
            passed = _associated([float(i) for i, _, _ in rows], ts, ys)
        if passed is None:
            continue
        values = [sus.direction * v for v in ys]
        start, now = ends(values)
        entry: dict[str, Any] = {
            "series": sus.label,
            "column": sus.series,
            "key": sus.key,
            "tau": tau,
            "p_value": mk.p_increasing,
            "start": start,
            "now": now,
        }
        entry.update(passed)
        # Direct accounting and known mechanisms first, then statistics. Within, what holds
        # most of the added time leads (a series can trend more cleanly than the one that
        # takes the time: an iterator's teardown after a callback's growing wait), then tau.
        rank = 0 if passed["test"] in ("accounts", "mechanism") else 1
        ranked.append((rank, -_majority(passed), -tau, entry))
    if any(e["column"] == "cb_seconds" and e["test"] == "accounts" for *_, e in ranked):
        ranked = [r for r in ranked if r[3]["column"] != "callback_seconds"]  # the named one says more
    ranked.sort(key=lambda item: item[:3])
    return [entry for *_, entry in ranked[:top]]


def _shared_dir(view: RunAtEpoch, path: str | None) -> bool:
    """A temp directory every job on the host writes to (/tmp, watched at its top level):
    only a mechanism ties its growth to the run's time, not a correlation (a DQN loop's
    step time "moved with files in /tmp", other jobs' files)."""
    return path is not None and view.series.dir_roles.get(path) == "temp"


def _majority(passed: dict[str, Any]) -> float:
    """The share of the added time a suspect holds, when it holds most of it (else 0)."""
    share = passed.get("share_of_added_time")
    return min(float(share), 1.0) if isinstance(share, int | float) and share >= MAJORITY else 0.0
