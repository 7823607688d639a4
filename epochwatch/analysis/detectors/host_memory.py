"""host_memory_growth: the floor of the process's RSS keeps rising.

Series: each epoch's lowest RSS (the epoch-end `host.rss_bytes`, or the lowest 1 Hz
sample in daemon mode), then a trailing minimum over ENVELOPE epochs, so allocator
chunks and garbage-collection sawtooth do not count, only the floor. The projection
uses the highest recent RSS (`peaks.rss_bytes` when the daemon sampled it) against the
cgroup memory limit where set, else physical memory.
"""

from __future__ import annotations

import itertools

from epochwatch.analysis import frameworks, leaks
from epochwatch.analysis.detectors import models_in_loop, optimizer_recreated, retrace_memory, retraces
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.growth import judge
from epochwatch.analysis.input_compare import input_settings
from epochwatch.analysis.shapes import BlatantRule
from epochwatch.analysis.trend import GrowthRule, median, theil_sen
from epochwatch.analysis.units import MIB, fmt_bytes
from epochwatch.analysis.view import RunAtEpoch

KIND = "host_memory_growth"
ENVELOPE = 3
RULE = GrowthRule(
    min_rel_slope=0.001,
    min_abs_slope=0.125 * MIB,  # the floor is relative (0.1% per point, +5% over the window)
    newest_alpha=0.05,
    autocorr=False,
)
PERSISTENCE = 4
# A short run's leak: +2%/epoch at least, +15% over its points, close to a straight line
# (R^2 0.8: an accelerating leak is no less a leak), each epoch a new high.
BLATANT = BlatantRule(min_abs_slope=2 * MIB, min_r2=0.8, new_high=True)
HINT = (
    "something keeps a reference to data every epoch: look for callbacks or loops that append "
    "model outputs, predictions, tensors or histories to a list (keep scalars with float(x) or "
    "bounded deques), tf.data .cache() in memory on a growing dataset, models or tf.functions "
    "created inside the loop (keras.backend.clear_session()), and new numpy arrays cached per epoch; "
    + frameworks.TRACEMALLOC
)


SHUFFLE_AFTER_MAP = (
    "the input pipeline shuffles after its map ({stages}): the shuffle buffer holds mapped (decoded) "
    "elements and is filled anew every epoch, which grows the process (tensorflow#32376); shuffle what "
    "is cheap (file names or indices) before the map, or lower buffer_size. Else: "
)


def _shuffles_mapped(view: RunAtEpoch) -> list[str]:
    """The newest fit's tf.data stages when a shuffle follows a map, else []."""
    stages = input_settings(view.run.fits[-1] if view.run.fits else None).get("stages")
    if not isinstance(stages, list) or "shuffle" not in stages:
        return []
    mapped = [i for i, name in enumerate(stages) if name in ("map", "interleave", "flat_map")]
    return [str(x) for x in stages] if mapped and mapped[0] < stages.index("shuffle") else []


def host_backed_growth(view: RunAtEpoch, indexes: list[int]) -> float:
    """The steepest growth per point, over `indexes`, of a device whose memory is the
    process's own (JAX's CPU device: its live arrays are in RSS), or 0.0."""
    steepest = 0.0
    for key in view.series.keys("tf_current"):
        if key.startswith("CPU"):
            values = [v for v in (view.series.value("tf_current", i, key) for i in indexes) if v == v]
            if len(values) >= 3:
                steepest = max(steepest, theil_sen(values).slope)
    return steepest


def left_by_the_hook(view: RunAtEpoch, indexes: list[int]) -> float:
    """The RSS the hook's own look inside left within `indexes`, over the run's usual pace:
    on intervals, the rise into the first interval after each of its stretches (a TF
    profiler capture's native memory, +10-20 MiB after its read in a mirrored custom loop),
    which the stretches' own records, left out, do not show; on epochs, the rise of each
    epoch it looked inside (a compiled step doing more each epoch: +13 MiB over the
    baseline profiler capture's epochs, +20 MiB over the slow one's, 1 MiB an epoch
    otherwise)."""
    looked = set({"interval": view.run.looked_after, "epoch": view.run.looked_epochs}.get(view.unit, []))
    rises = {b: view.value("rss", b) - view.value("rss", a) for a, b in itertools.pairwise(indexes)}
    usual = [r for i, r in rises.items() if i not in looked and r == r]
    pace = max(0.0, median(usual)) if usual else 0.0
    return sum(max(0.0, rises[i] - pace) for i in looked if i in rises and rises[i] == rises[i])


def current(view: RunAtEpoch, finding: Finding | None) -> float:
    """The RSS now: the newest epoch's reading (not the trailing envelope's lagged floor)."""
    now = view.latest("rss")
    return now if now == now else view.latest("rss_min")


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.done(KIND, None):
        return []
    if (view.unit == "fit" or view.run.nested_epochs) and models_in_loop.new_models_each_fit(view):
        return []  # one problem, one finding: what each new model leaves behind is models_in_loop's
    verdict = judge(view, "rss_min", RULE, envelope=ENVELOPE, blatant=BLATANT)
    if verdict is None:
        return []
    g, w = verdict.growth, verdict.window
    if retraces.explains(view, w.indexes, rss_slope=g.slope) or retrace_memory.explains(view, w.indexes):
        return []  # one problem, one finding: what the new traces hold is retrace_storm's
    if optimizer_recreated.holds(view):
        return []  # ... and what an optimizer made anew at every update holds is optimizer_recreated's
    if host_backed_growth(view, w.indexes) >= 0.5 * g.slope:
        return []  # ... and what JAX's CPU device holds is gpu_memory_growth's, on `CPU:0`
    rise = view.value("rss", w.indexes[-1]) - view.value("rss", w.indexes[0])
    if rise > 0 and left_by_the_hook(view, w.indexes) >= 0.5 * rise:
        return []  # most of it came as the hook looked inside: the hook's, not the run's
    peak = view.latest("rss_peak")
    level = max(peak, view.latest("rss")) if peak == peak else view.latest("rss")
    limit, limit_name = leaks.host_limit(view)
    now = current(view, None)
    evidence = leaks.growth_evidence(view, g, w, now)
    proj = leaks.projection(view, level, limit, g.slope, evidence["slope_per_epoch"])
    evidence.update(proj, level=level, limit_name=limit_name)
    evidence.update(envelope_epochs=ENVELOPE if verdict.rule == "trend" else 1, rule=verdict.rule)
    evidence.update(current=now, base=g.start)
    slope, per = view.said(g.slope, evidence["slope_per_epoch"])
    title = f"host memory grows {fmt_bytes(slope)} {per}: {fmt_bytes(evidence['start'])} -> {fmt_bytes(now)}"
    tail = leaks.consequence(proj, limit_name, view.noun)
    if tail:
        title += f"; {tail}"
        evidence["consequence"] = tail
    severity = leaks.severity(proj, (view.head("rss_min", settling=True)[:1] or [g.start])[0])
    if view.noun == "window":  # a process that serves runs on: its memory gone within the hour
        severity = leaks.soon(proj, severity)
    hint = frameworks.hint(KIND, frameworks.framework(view.start), HINT)
    stages = _shuffles_mapped(view)
    if stages:
        hint = SHUFFLE_AFTER_MAP.format(stages=" -> ".join(stages)) + hint
    recompiled = models_in_loop.recompiled_each_fit(view) if view.unit == "fit" else []
    if recompiled:  # what each fit leaves behind is the compile's: the fix says so
        evidence["recompiled_each_fit"] = recompiled[-3:]
        hint = models_in_loop.RECOMPILED.format(names=", ".join(recompiled[:3]))
    return [
        Finding(KIND, severity, title, evidence, hint, None, view.epoch_number(view.last), hold=verdict.hold)
    ]


DETECTOR = Detector(
    name=KIND, detect=detect, persistence=PERSISTENCE, current=current, intervals=True, fits=True
)
