"""A memory window as a few short tracemalloc slices, each across one epoch boundary.

Why slices: tracemalloc makes every allocation 2-3 times dearer while it is on, so a
window that traced whole epochs cost +100-180% of them. A slice traces from shortly
before an epoch's predicted end (the quickest of the last epochs, from epoch record to
epoch record) to shortly after the next epoch's first steps: what the epoch's last steps,
its `on_epoch_end` callbacks and the next epoch's first steps allocate and keep.
memory.py turns each slice into growth per epoch and site; the sites that grew in every
slice are the answer.

Sizing: each part (lead, tail) lasts `share` of an epoch, but at least eight steps (the
lead also covers the epoch's validation and `on_epoch_end` callbacks, from its record). A
slice's cost is measured two boundaries after it (the training thread's CPU in the
epochs of its lead, its tail and the one after, against those before), and the next
slice waits until that cost is `budget` of the epochs between; after the last, the window
cools down as long (`complete`, then `finished`). A slice whose epoch ends before tracing began, or long after, is a
miss: the next boundary tries again, with a longer lead. Where the loop says its steps (a
Keras fit, anchor.py), the slice starts at the begin of the epoch's last steps instead of
at a predicted time and ends at the begin of the next epoch's step as many steps in (when
the step before it has freed what it allocated), and its parts are counted in steps.

A clock thread (one per window) starts and ends timed parts off the training thread; the
snapshot at the boundary is taken at the epoch record (the training thread). One lock.
"""

from __future__ import annotations

import itertools
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from epochwatch.explain.anchor import STEPS, StepAnchor
from epochwatch.explain.looking import LOOKING
from epochwatch.explain.memory import DEPTH, Sizes, SliceParts, boundary_parts, per_epoch


@dataclass(frozen=True)
class SliceLimits:
    share: float = 0.01  # a part's length, of an epoch
    min_steps: float = 8.0  # ...but eight steps at least, timed (a per-step rate on both
    # sides, within a step's allocations of an eighth); a Keras fit counts its steps exactly
    min_part: float = 0.002  # seconds (a timer fires within a millisecond or two)
    max_part: float = 1.0
    slices: int = 2  # slices a window takes
    tries: int = 8  # boundaries tried in all (misses included)
    budget: float = 0.015  # the window's cost, of the epochs it spans: 2% less what a measure misses
    slowdown: float = 3.0  # tracemalloc's slowdown assumed where unmeasured (bench/explain.py)
    max_slowdown: float = 6.0  # the most a slice's measured slowdown is believed
    clear_slowdown: float = 2.0  # ...and the least that is not a loaded machine's noise
    max_gap: int = 200  # boundaries from one slice to the next, at most


class _Clock:
    """One thread per window that calls the slice's next deadline (one pending at a time):
    a `threading.Timer` per deadline started a thread each, 0.5 ms of CPU and up to 2 ms
    of the training thread's time on a loaded machine, three times a slice."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._due: tuple[float, Callable[..., None], tuple[Any, ...]] | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def set(self, delay: float, target: Callable[..., None], *args: Any) -> None:
        with self._cv:
            self._due = (time.perf_counter() + delay, target, args)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="epochwatch-explain-tracemalloc", daemon=True
                )
                self._thread.start()
            self._cv.notify()

    def cancel(self) -> None:
        with self._cv:
            self._due = None

    def close(self) -> None:
        with self._cv:
            self._closed, self._due = True, None
            self._cv.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (self._due is None or self._due[0] > time.perf_counter()):
                    self._cv.wait(None if self._due is None else self._due[0] - time.perf_counter())
                if self._closed:
                    return
                assert self._due is not None
                _at, target, args = self._due
                self._due = None
            target(*args)  # outside the clock's lock: it takes the slicer's


class Slicer:
    """One memory window: schedules slices at epoch boundaries until it has `slices`, then
    cools down over the epochs that pay for them (`complete` before, `finished` after)."""

    def __init__(self, limits: SliceLimits | None = None, anchor: StepAnchor = STEPS) -> None:
        import tracemalloc  # here, not with the hook: only a window needs it

        self._tm = tracemalloc
        self.owned = not tracemalloc.is_tracing()
        self.limits = limits or SliceLimits()
        self._anchor = anchor
        self._lock = threading.Lock()
        self._clock = _Clock()
        self._state = "idle"  # idle -> scheduled -> lead -> tail -> idle
        self._wait = 0  # boundaries to let pass before the next slice
        self._extra_lead = 0.0
        self._t0 = self._t1 = 0.0
        self._at: Any = None  # the boundary snapshot
        self._part = 0.0
        self._tail_steps = 0  # ...and the tail ends at one, not on a timer
        self._traced_epoch = False  # tracing was on since the last boundary
        self._epoch_seconds = 0.0
        self._steps = 0
        self._cpus: list[float] = []  # the training thread's CPU time at the last boundaries
        self._cpu_intervals: list[float] = []  # ...per epoch
        self._epoch_cpu = 0.0  # ...and its median epoch before the slice
        self.costs: list[float] = []  # seconds each slice cost, measured (else assumed)
        self._thread = 0  # the training thread (where boundaries are said)
        self._pending: _Pending | None = None  # a slice taken, settled two boundaries on
        self.parts: list[tuple[SliceParts, float]] = []  # (parts, the epoch in their unit)
        self.at: list[int] = []  # each slice's boundary, counted from the window's first
        self._boundaries = 0
        self._slice_at = 0
        self.tries = 0
        self.by_steps = 0  # slices whose parts were counted in steps (the loop says them)
        self.traced_seconds = 0.0
        self.cpu_seconds = 0.0  # the snapshots and their comparison
        self.slowdowns: list[float] = []  # measured, per slice taken by time
        self.gaps: list[int] = []  # epochs each slice's cost was spread over
        self.complete = False  # the slices are taken (what grew can be said); cooling down
        self.finished = False

    def sizes(self) -> list[Sizes]:
        """Each slice's growth per epoch and site."""
        with self._lock:
            return [per_epoch(part, epoch) for part, epoch in self.parts]

    def on_boundary(
        self,
        intervals: list[float],
        steps: int | None,
        boundary_work: float = 0.0,
        cpus: list[float] | None = None,
    ) -> bool:
        """An epoch record (the training thread): the boundary snapshot of an open slice,
        a miss for one not yet started, the cost of the slice before, else perhaps the
        next slice's schedule. Returns whether tracing was on in the epoch that ended (its
        time is not the run's own). `cpus`: the training thread's CPU seconds in the last
        epochs, if the caller kept them (else the window's own)."""
        with self._lock:
            self._cpus = [*self._cpus[-4:], time.thread_time()]
            self._cpu_intervals = (
                cpus if cpus is not None else [b - a for a, b in itertools.pairwise(self._cpus)]
            )
            traced, self._traced_epoch = self._traced_epoch or self._state in ("lead", "tail"), False
            self._boundaries += 1
            self._step(intervals, steps, boundary_work)
            finished = self.finished
        if finished:
            self._clock.close()
        return traced

    def _step(self, intervals: list[float], steps: int | None, boundary_work: float) -> None:
        if self.finished or not self.owned:
            return
        if self._pending is not None:  # the epochs after a slice: measured, then settled
            self._pending.boundaries += 1
            if self._pending.boundaries < 2:
                return
            self._settle(self._pending, intervals)
        if self._state == "scheduled":  # the epoch ended before tracing began
            self._clock.cancel()
            self._anchor.disarm()
            self._state, self._extra_lead = "idle", self._extra_lead + self._part
        elif self._state == "lead":
            self._clock.cancel()
            c0 = time.thread_time()
            self._at, self._t1 = self._tm.take_snapshot(), time.perf_counter()
            self._slice_at = self._boundaries
            self.cpu_seconds += time.thread_time() - c0
            self._state, self._traced_epoch = "tail", True  # the next epoch begins traced
            if self._tail_steps:  # Keras: at a step's begin, when the last one's temporaries are gone
                self._anchor.arm(self._tail_steps, lambda: self._end(by_steps=True))
                self._clock.set(self._part * 4 + 1.0, self._end)  # a fit that stops
            else:
                self._clock.set(self._part, self._end)
            return
        if self._state != "idle" or not intervals:
            return
        if self._wait > 0:
            self._wait -= 1
            return
        if self.complete or self.tries >= self.limits.tries:
            self.finished = True
            return
        self._schedule(intervals, steps, boundary_work)

    def _settle(self, slice_: _Pending, intervals: list[float]) -> None:
        """The boundary after the epoch after a slice's tail: what it cost, measured on the
        epochs of its lead, its tail and the next against the untraced ones before (its
        slowdown, its snapshots, the heap it grew), and so how many epochs must pay for it;
        a slice timed in seconds is scaled back to untraced seconds where tracing clearly
        slowed it (a per-step leak read 2-4 times low before).

        CPU, not wall time: a shared machine's load moves an epoch's wall time by more than
        a slice costs; the training thread's CPU moves little. Both are read against the
        median of the epochs before (against the dearest, a slice read 2-4 times cheap on a
        loaded machine; epochs whose CPU alternates, a fresh process's large arrays faulting
        their pages in every other epoch, may read one dear: the window then spans longer)."""
        self._pending = None
        lim, epoch, parts = self.limits, self._epoch_seconds, slice_.parts
        cpus = self._cpu_intervals[-3:] if intervals else []  # lead, tail, and the epoch after
        measured = len(cpus) == 3 and self._epoch_cpu > 0
        if measured:
            # CPU over CPU: the work traced took `slowed` more than the thread's CPU rate
            # untraced gives its traced seconds (a loaded machine stretches both alike);
            # half the traced seconds at least (a thread that mostly waits: the noise of
            # its little CPU is no slowdown).
            slowed = max(0.0, cpus[0] + cpus[1] - 2 * self._epoch_cpu)
            untraced = slice_.traced * min(1.0, max(0.5, self._epoch_cpu / max(epoch, 1e-9)))
            scale = round(min(lim.max_slowdown, 1 + slowed / max(untraced, 1e-9)), 2)
            self.slowdowns.append(scale)
            # The traced seconds as the untraced run would have spent them, where tracing
            # clearly slowed the steps (Python-heavy ones, 2-5 times): below, it is noise.
            if not slice_.by_steps and scale >= lim.clear_slowdown:
                parts = SliceParts(parts.before, parts.after, parts.lead / scale, parts.tail / scale)
        self.parts.append((parts, float(self._steps) if slice_.by_steps else epoch))
        self.at.append(slice_.at)
        self.by_steps += slice_.by_steps
        # Slices cost much the same: the mean of those measured.
        self.costs.append(
            max(0.0, sum(cpus) - 3 * self._epoch_cpu) + slice_.off_thread
            if measured
            else slice_.traced * (1 - 1 / lim.slowdown) + slice_.off_thread
        )
        # Held against the epoch's CPU on the training thread where it computes (a loaded
        # machine stretches wall time, not work), or a quarter of its wall time where it
        # mostly waits (for a GPU, for input): within `budget` of both, near enough.
        paid = max(min(self._epoch_cpu, epoch), epoch / 4) if measured else epoch
        cost = statistics.fmean(self.costs)
        gap = int(min(lim.max_gap, max(3, math.ceil(cost / max(1e-9, lim.budget * paid)))))
        self.gaps.append(gap)
        self._wait = gap - 3  # this boundary ends the epoch after the tail's; the next lead is `gap` on
        self.complete = self.complete or len(self.parts) >= lim.slices

    def _schedule(self, intervals: list[float], steps: int | None, boundary_work: float) -> None:
        lim = self.limits
        recent = intervals[-3:]
        epoch = statistics.median(recent)
        cpus = self._cpu_intervals[-3:]
        self._epoch_cpu = statistics.median(cpus) if cpus else 0.0
        self._thread = threading.get_ident()
        part = lim.share * epoch
        if steps:  # a step: the epoch less its validation and callbacks, per step
            part = max(part, lim.min_steps * max(0.0, epoch - boundary_work) / steps)
        # Never more than a quarter epoch a side (an epoch of one counted step, or very few).
        self._part = min(lim.max_part, 0.25 * epoch, max(lim.min_part, part))
        self._epoch_seconds = epoch
        self._steps = steps or 0
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
            self._clock.set(delay, self._start, limit)

    def _start(self, limit: float) -> None:
        with self._lock:
            if self._state != "scheduled":
                return
            if self._tm.is_tracing():  # the script began tracing memory itself: leave it alone
                self.owned, self.finished, self._state = False, True, "idle"
                return
            self._tm.start(DEPTH)
            LOOKING.begin(self)
            self._traced_epoch = True
            self._t0 = time.perf_counter()
            self._state = "lead"
            self._clock.set(limit, self._overrun)

    def _overrun(self) -> None:
        """The epoch is far longer than predicted: stop tracing, try at a later boundary."""
        with self._lock:
            if self._state == "lead":
                self._stop_tracing()
                # The next boundary ends an epoch that was traced: its times are not the
                # run's own, so the schedule waits for one that was not.
                self._state, self._wait = "idle", 1

    def _end(self, by_steps: bool = False) -> None:
        """The tail ends: at the begin of the step after it (a Keras fit, the training
        thread: `by_steps`, its parts are counted in steps) or on the clock. Both snapshots
        become sizes per site here; the slice's cost is settled at the next boundary."""
        with self._lock:
            if self._state != "tail":
                return
            self._clock.cancel()
            self._anchor.disarm()
            c0 = time.thread_time()
            end = self._tm.take_snapshot()
            t2 = time.perf_counter()
            traced = t2 - self._t0
            self._stop_tracing()
            before, after = boundary_parts(self._at, end)
            self._at = None
            lead, tail = (
                (float(self._tail_steps), float(self._tail_steps))
                if by_steps
                else (self._t1 - self._t0, t2 - self._t1)
            )
            cpu = time.thread_time() - c0
            self.cpu_seconds += cpu
            off = 0.0 if threading.get_ident() == self._thread else cpu
            self._pending = _Pending(
                SliceParts(before, after, lead, tail), by_steps, traced, off, self._slice_at
            )
            self._state = "idle"

    def figures(self) -> dict[str, Any]:
        return {
            "slices": len(self.parts),
            "slices_by_steps": self.by_steps,
            "boundaries_tried": self.tries,
            "traced_seconds": round(self.traced_seconds, 4),
            "cost_seconds": round(self.cpu_seconds, 6),
            "slowdowns": self.slowdowns,
            "epochs_per_slice": self.gaps,
        }

    def _stop_tracing(self) -> None:
        self.traced_seconds += time.perf_counter() - self._t0
        LOOKING.end(self)
        if self._tm.is_tracing():
            self._tm.stop()

    def stop(self) -> list[Sizes]:
        """The run ends: whatever is open stops unsaid; a slice taken but not yet settled
        counts, unmeasured; the slices' growth per epoch."""
        with self._lock:
            self._clock.cancel()
            self._anchor.disarm()
            if self._state in ("lead", "tail"):
                self._stop_tracing()
            if self._pending is not None:
                self._settle(self._pending, [])
            self._state, self._at, self.finished = "idle", None, True
        self._clock.close()
        return self.sizes()


@dataclass
class _Pending:
    """A slice taken, its cost not yet measured (at the boundary after its tail)."""

    parts: SliceParts
    by_steps: bool
    traced: float  # seconds traced
    off_thread: float  # CPU seconds its end took off the training thread (on the clock)
    at: int  # its boundary (Slicer.at)
    boundaries: int = 0  # seen since: its cost shows in the tail's epoch and the next one
    # (after tracing, the heap it grew is trimmed and faulted back in: +10-45 ms of a 0.12 s
    # epoch of Python-allocating steps)
