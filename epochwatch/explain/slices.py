"""A memory window as a few short tracemalloc slices, each across one epoch boundary.

Why slices: tracemalloc makes every allocation 2-3 times dearer while it is on, so a
window that traced whole epochs cost +100-180% of them. A slice traces from shortly
before an epoch's predicted end (the quickest of the last epochs, from epoch record to
epoch record) to shortly after the next epoch's first steps: what the epoch's last steps,
its `on_epoch_end` callbacks and the next epoch's first steps allocate and keep.
memory.py turns each slice into growth per epoch and site; the sites that grew in every
slice are the answer.

Sizing: each part (lead, tail) lasts `share` of an epoch, but at least two steps (the lead
also covers the epoch's validation and `on_epoch_end` callbacks, from its record); slices
are `gap` boundaries apart so that their traced time times tracemalloc's slowdown stays
within `budget` of the epochs the window spans (bench/explain.py measures the cost).
A slice whose epoch ends before tracing began, or long after, is a miss: the next
boundary tries again, with a longer lead. Where the loop says its steps (a Keras fit,
anchor.py), the slice starts at the begin of the epoch's last steps instead of at a
predicted time (no miss, nothing traced early by the epochs' spread) and ends at the begin
of the next epoch's step as many steps in, when the step before it has freed what it
allocated (a timer's snapshot would catch a step's arrays alive and name them).

Timers start and end slices off the training thread; the snapshot at the boundary is
taken at the epoch record (the training thread). One lock; results leave through
`done(fields)` outside it (the Explainer takes its own lock there).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from epochwatch.explain.anchor import STEPS, StepAnchor
from epochwatch.explain.memory import DEPTH, Sizes, SliceParts, boundary_parts, per_epoch


@dataclass(frozen=True)
class SliceLimits:
    share: float = 0.01  # a part's length, of an epoch
    min_steps: float = 2.0  # ...but two steps at least (a per-step rate on both sides)
    min_part: float = 0.002  # seconds (a timer fires within a millisecond or two)
    max_part: float = 1.0
    slices: int = 2  # slices a window takes
    tries: int = 8  # boundaries tried in all (misses included)
    budget: float = 0.02  # the window's cost target, of the epochs it spans
    slowdown: float = 3.0  # tracemalloc's slowdown assumed for the spacing (bench/explain.py)
    max_gap: int = 6


class Slicer:
    """One memory window: schedules slices at epoch boundaries until it has `slices`."""

    def __init__(
        self, done: Callable[[Slicer], None], limits: SliceLimits | None = None, anchor: StepAnchor = STEPS
    ) -> None:
        import tracemalloc  # here, not with the hook: only a window needs it

        self._tm = tracemalloc
        self.owned = not tracemalloc.is_tracing()
        self.limits = limits or SliceLimits()
        self._anchor = anchor
        self._done = done
        self._lock = threading.Lock()
        self._state = "idle"  # idle -> scheduled -> lead -> tail -> idle
        self._timer: threading.Timer | None = None
        self._wait = 0  # boundaries to let pass before the next slice
        self._extra_lead = 0.0
        self._t0 = self._t1 = 0.0
        self._at: Any = None  # the boundary snapshot
        self._part = 0.0
        self._tail_steps = 0  # a Keras fit: the tail ends at this step's begin, not on a timer
        self._traced_epoch = False  # tracing was on since the last boundary
        self._epoch_seconds = 0.0
        self.slices: list[Sizes] = []
        self.tries = 0
        self.traced_seconds = 0.0
        self.cpu_seconds = 0.0  # the snapshots and their comparison
        self.finished = False

    def on_boundary(self, intervals: list[float], steps: int | None, boundary_work: float = 0.0) -> bool:
        """An epoch record (the training thread): the boundary snapshot of an open slice,
        a miss for one not yet started, else perhaps the next slice's schedule. Returns
        whether tracing was on in the epoch that ended (its time is not the run's own)."""
        with self._lock:
            traced, self._traced_epoch = self._traced_epoch or self._state in ("lead", "tail"), False
            self._step(intervals, steps, boundary_work)
            return traced

    def _step(self, intervals: list[float], steps: int | None, boundary_work: float) -> None:
        if self.finished or not self.owned:
            return
        if self._state == "scheduled":  # the epoch ended before tracing began
            self._cancel()
            self._anchor.disarm()
            self._state, self._extra_lead = "idle", self._extra_lead + self._part
        elif self._state == "lead":
            self._cancel()
            c0 = time.thread_time()
            self._at, self._t1 = self._tm.take_snapshot(), time.perf_counter()
            self.cpu_seconds += time.thread_time() - c0
            self._state, self._traced_epoch = "tail", True  # the next epoch begins traced
            if self._tail_steps:  # Keras: at a step's begin, when the last one's temporaries are gone
                self._anchor.arm(self._tail_steps, self._end)
                self._timer = _start_timer(self._part * 4 + 1.0, self._end)  # a fit that stops
            else:
                self._timer = _start_timer(self._part, self._end)
            return
        if self._state != "idle" or not intervals:
            return
        if self._wait > 0:
            self._wait -= 1
            return
        if self.tries >= self.limits.tries:
            self.finished = True
            return
        self._schedule(intervals, steps, boundary_work)

    def _schedule(self, intervals: list[float], steps: int | None, boundary_work: float) -> None:
        lim = self.limits
        recent = intervals[-3:]
        epoch = statistics.median(recent)
        part = lim.share * epoch
        if steps:  # a step: the epoch less its validation and callbacks, per step
            part = max(part, lim.min_steps * max(0.0, epoch - boundary_work) / steps)
        # Never more than a quarter epoch a side (an epoch of one counted step, or very few).
        self._part = min(lim.max_part, 0.25 * epoch, max(lim.min_part, part))
        self._epoch_seconds = epoch
        self.tries += 1
        # The quickest recent epoch ends first: start a part before its last steps end
        # (before validation and the callbacks' on_epoch_end: `boundary_work`), and after
        # a miss earlier still.
        lead = self._part + boundary_work + self._extra_lead
        delay = max(0.0, min(recent) - lead)
        self._state = "scheduled"
        # Tracing stops unsaid if the boundary is this late: the epochs' spread and more, and
        # the epoch's end work as slow as tracemalloc makes it.
        limit = lead + boundary_work * lim.slowdown + self._part * 3 + 2 * (max(recent) - min(recent))
        self._tail_steps = 0
        if self._anchor.active and steps:  # Keras: at the begin of the epoch's last steps
            # Steps mark the boundary exactly: one a side is enough (`share` of the epoch if more).
            # At most a quarter of the steps a side, whatever the end work measured (an
            # epoch whose end work was traced read longer than the epoch itself: every step
            # was traced, 2.3 s of a 0.3 s epoch in the demo).
            train = max(epoch - boundary_work, 0.5 * epoch)
            last = min(max(1, steps // 4), max(1, math.ceil(lim.share * steps * epoch / train)))
            self._tail_steps = last
            self._anchor.arm(steps - last, lambda: self._start(epoch + limit))
        else:
            self._timer = _start_timer(delay, self._start, limit)

    def _start(self, limit: float) -> None:
        with self._lock:
            if self._state != "scheduled":
                return
            if self._tm.is_tracing():  # the script began tracing memory itself: leave it alone
                self.owned, self.finished, self._state = False, True, "idle"
                return
            self._tm.start(DEPTH)
            self._traced_epoch = True
            self._t0 = time.perf_counter()
            self._state = "lead"
            self._timer = _start_timer(limit, self._overrun)

    def _overrun(self) -> None:
        """The epoch is far longer than predicted: stop tracing, try at a later boundary."""
        with self._lock:
            if self._state == "lead":
                self._stop_tracing()
                # The next boundary ends an epoch that was traced: its times are not the
                # run's own, so the schedule waits for one that was not.
                self._state, self._wait = "idle", 1

    def _end(self) -> None:
        with self._lock:
            if self._state != "tail":
                return
            self._cancel()
            self._anchor.disarm()
            c0 = time.thread_time()
            end = self._tm.take_snapshot()
            t2 = time.perf_counter()
            self._stop_tracing()
            before, after = boundary_parts(self._at, end)
            self._at = None
            part = SliceParts(before, after, self._t1 - self._t0, t2 - self._t1)
            self.slices.append(per_epoch(part, self._epoch_seconds))
            self.cpu_seconds += time.thread_time() - c0
            self._state = "idle"
            self._wait = self._gap(t2 - self._t0) - 2  # its own boundary and the next have passed
            complete = len(self.slices) >= self.limits.slices
            self.finished = self.finished or complete
        if complete:
            self._done(self)

    def _gap(self, traced: float) -> int:
        """Boundaries from one slice to the next: the slice's traced time, times the share of
        it that tracemalloc's slowdown added, within `budget` of the epochs in between."""
        lim = self.limits
        cost = traced * (1 - 1 / lim.slowdown)
        per_epoch_budget = max(1e-9, lim.budget * self._epoch_seconds)
        return int(min(lim.max_gap, max(2, -(-cost // per_epoch_budget))))

    def figures(self) -> dict[str, Any]:
        return {
            "slices": len(self.slices),
            "boundaries_tried": self.tries,
            "traced_seconds": round(self.traced_seconds, 4),
            "cost_seconds": round(self.cpu_seconds, 6),
        }

    def _stop_tracing(self) -> None:
        self.traced_seconds += time.perf_counter() - self._t0
        if self._tm.is_tracing():
            self._tm.stop()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def stop(self) -> list[Sizes]:
        """The run ends: whatever is open stops unsaid; the slices taken so far."""
        with self._lock:
            self._cancel()
            self._anchor.disarm()
            if self._state in ("lead", "tail"):
                self._stop_tracing()
            self._state, self._at, self.finished = "idle", None, True
            return list(self.slices)


def _start_timer(delay: float, target: Callable[..., None], *args: Any) -> threading.Timer:
    timer = threading.Timer(delay, target, args)
    timer.daemon = True
    timer.name = "epochwatch-explain-tracemalloc"
    timer.start()
    return timer
