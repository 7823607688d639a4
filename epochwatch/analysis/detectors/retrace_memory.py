"""Host growth that new traces explain: RSS that rises where, and only where, a function traced.

Each new trace of a `tf.function` holds a graph and its caches: a GAN step's is 20-30 MiB
(bench/real_scripts/pix2pix_epoch_arg_retrace.py: +22-25 MiB with each of its one trace per
epoch, 0.41-0.45 s of graph building). A function that retraces once an epoch so makes RSS
grow like a leak; that growth is retrace_storm's, said once (host_memory.py asks here after
`retraces.explains`, whose per-step rule needs many traces per epoch). The evidence is the
coincidence, point by point (epochs, or the sub-epoch intervals, whose `retraces` block says
which stretch of steps traced): over the window judged,

- nearly every epoch (NEARLY; on intervals, the epochs after the window's first, which may
  be partial) made new traces, so the retraces go on all along and retrace_storm says so;
  epochs after the last that grew are not counted (the storm stopped, and its growth with it:
  tensorflow#34025's padded batches had seen every length by epoch 7 of 10);
- the points without new traces added at most QUIET_SHARE of the rise: growth that goes on
  in steps or epochs that do not trace is a leak beside the retraces, said on its own. On
  intervals, what the one after a traced interval adds beyond the other quiet intervals'
  median counts with the trace: a new graph's first full runs allocate its buffers there
  (tensorflow#34025's padded batches: +5-6 MiB right after each interval that traced, 29% of
  the rise, and the storm was said twice), while a leak beside grows them all alike;
- the points that traced added no more than their traces plausibly hold: BYTES_PER_TRACE
  each (retraces.py's), or BYTES_PER_BUILD_SECOND of their graph building where that is
  more: a graph's memory and its build time both grow with its ops, and a big step's 20-30
  MiB take about half a second to build (pix2pix: 52 MiB per second of building at most, on
  two busy cores; the bound leaves room for a CPU twice as fast). A jump far beyond that is a
  leak that happens to come with the trace (what an epoch keeps at its end lands in the
  interval of the next epoch's first step, which is where a per-epoch retrace is), and
  traces that took no building to speak of hold no tens of MiB.
"""

from __future__ import annotations

from epochwatch.analysis.detectors.retraces import BYTES_PER_TRACE, new_traces
from epochwatch.analysis.units import MIB
from epochwatch.analysis.view import RunAtEpoch

NEARLY = 0.75  # of the window's epochs traced anew
MIN_EPOCHS = 2  # epochs to judge that on
QUIET_SHARE = 0.25  # of the rise, at most, in points that made no new trace
BYTES_PER_BUILD_SECOND = 128 * MIB  # of RSS a new trace may hold per second it took to build
FLAT = 1 * MIB  # a point's rise below this is no growth: the window's flat tail after the storm


def explains(view: RunAtEpoch, indexes: list[int]) -> bool:
    """Whether the RSS rise over `indexes` of `view` came with new traces, as above."""
    if len(indexes) < 2 or view.unit not in ("epoch", "interval"):
        return False
    s = view.series
    epochs = view.unit == "epoch"
    first, last = indexes[0], indexes[-1]
    before = s.value("rss", first)
    if before != before:
        return False
    partial = None if epochs else view.epoch_number(first)  # its traced interval may be before
    traced_rise = quiet_rise = allowance = 0.0
    seen: set[int] = set()
    traced: set[int] = set()
    after: list[float] = []  # the rises of the intervals right after one that traced
    quiet: list[float] = []
    was_traced = False
    rose: list[int] = []  # the epoch numbers of the points, until the last that rose
    for i in range(first + 1, last + 1):
        rss = s.value("rss", i)
        if rss != rss:
            continue
        delta, before = rss - before, rss
        n = new_traces(s, i) if epochs else s.value("retrace_new", i)
        number = view.epoch_number(i)
        if number != partial:
            seen.add(number)
            if delta > FLAT:
                rose.append(number)
        if n == n and n > 0:
            traced.add(number)
            build = s.value("graph_build", i)
            allowance += max(BYTES_PER_TRACE * n, BYTES_PER_BUILD_SECOND * build if build == build else 0.0)
            traced_rise += delta
        else:
            (after if was_traced and not epochs else quiet).append(delta)
        was_traced = n == n and n > 0
    typical = sorted(quiet)[len(quiet) // 2] if quiet else 0.0
    quiet_rise = sum(quiet) + sum(min(d, typical) for d in after)
    traced_rise += sum(max(0.0, d - typical) for d in after)
    rise = traced_rise + quiet_rise
    # Epochs after the last rise neither trace nor grow: the storm and its growth ended together.
    seen = {n for n in seen if not rose or n <= rose[-1]}
    return (
        rise > 0
        and len(seen) >= MIN_EPOCHS
        and len(traced & seen) >= NEARLY * len(seen)
        and quiet_rise <= QUIET_SHARE * rise
        and traced_rise <= allowance
    )
