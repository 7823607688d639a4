"""swap_pressure: the process is swapped out, or the host's swap use keeps rising.

Process: `host.swap_bytes` at least MIN_SWAP_BYTES and MIN_SWAP_SHARE of RSS in each of
the last RECENT epochs (critical from CRITICAL_SHARE of RSS: most pages the step needs
are on disk). System: `host.sys_swap_used_bytes` grows (the growth rule) while the host
has less than LOW_AVAILABLE of its memory available.
"""

from __future__ import annotations

from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import CRITICAL, WARNING, Finding
from epochwatch.analysis.leaks import growth_evidence
from epochwatch.analysis.trend import GrowthRule, assess_growth
from epochwatch.analysis.units import MIB, fmt_bytes, fmt_pct
from epochwatch.analysis.view import RunAtEpoch, window_epochs

KIND = "swap_pressure"
RECENT = 3
MIN_SWAP_BYTES = 64 * MIB
MIN_SWAP_SHARE = 0.05
CRITICAL_SHARE = 0.25
LOW_AVAILABLE = 0.10
SYSTEM_RULE = GrowthRule(min_abs_slope=16 * MIB, min_rel_slope=0.0, min_rel_growth=0.0)
PERSISTENCE = 1  # RECENT epochs in a row already
HINT = (
    "the job needs more memory than it gets: lower the batch size or the tf.data prefetch/shuffle "
    "buffers, fix any host memory growth, stop other memory-hungry processes, or run with more RAM; "
    "swapping makes every step wait on disk"
)


def _process(view: RunAtEpoch) -> Finding | None:
    idx = list(view.series.indexes(view.end, RECENT, warm=True))
    if len(idx) < RECENT:
        return None
    swaps = [view.value("swap", i) for i in idx]
    rss = [view.value("rss", i) for i in idx]
    shares = []
    for sw, r in zip(swaps, rss, strict=True):
        if not (sw == sw and sw >= MIN_SWAP_BYTES):
            return None
        share = sw / (sw + r) if r == r and r > 0 else 1.0
        if share < MIN_SWAP_SHARE:
            return None
        shares.append(share)
    share = min(shares)
    evidence = {
        "swap_bytes": swaps[-1],
        "rss_bytes": rss[-1],
        "swapped_share": share,
        "epochs": window_epochs(view, idx),
    }
    title = f"{fmt_bytes(swaps[-1])} of the process is swapped out ({fmt_pct(share)} of its memory)"
    severity = CRITICAL if share >= CRITICAL_SHARE else WARNING
    return Finding(KIND, severity, title, evidence, HINT, "process", view.epoch_number(view.last))


def _system(view: RunAtEpoch) -> Finding | None:
    avail, total = view.latest("sys_available"), view.latest("sys_total")
    if not (avail == avail and total == total and total > 0 and avail / total < LOW_AVAILABLE):
        return None
    w = view.window("sys_swap_used", size=SYSTEM_RULE.window)
    g = assess_growth(w.values, SYSTEM_RULE)
    if g is None:
        return None
    evidence = growth_evidence(view, g, w, view.latest("sys_swap_used"))
    evidence["sys_available_bytes"] = avail
    evidence["sys_total_bytes"] = total
    title = (
        f"the host swaps more every epoch (+{fmt_bytes(g.slope)} per epoch) with "
        f"{fmt_pct(avail / total)} of its memory available"
    )
    return Finding(KIND, WARNING, title, evidence, HINT, "system", view.epoch_number(view.last))


def detect(view: RunAtEpoch) -> list[Finding]:
    found = []
    for target, check in (("process", _process), ("system", _system)):
        if not view.done(KIND, target):
            f = check(view)
            if f is not None:
                found.append(f)
    return found


DETECTOR = Detector(name=KIND, detect=detect, persistence=PERSISTENCE)
