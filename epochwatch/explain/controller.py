"""When to look inside, and what to write: the hook's explain windows, driven by records.

The Explainer is a record listener of the Recorder: every window opens and closes at an
epoch record (written on the training thread, so that is the thread sampled), and what a
window found becomes one `explain` record right after the epoch record that closed it.

- Stack sampling (`stacks.py`): a baseline window once, early (from the first epoch's end,
  over the next epoch or few); a slow window when a slowdown is suspected: the last two
  epochs each took `SLOW_RATIO` times the baseline's (a cheap trigger, epochs ahead of
  the trend test), or a `slowdown` finding arrived. The record names the places holding
  most of the added time (`added.py`). In a loop of fits, a later fit's first epoch is a
  warm-up as the run's first is: it triggers nothing and no window spans into it, and
  the fit's epochs are held to its own quickest, not the first fit's.
- torch's CUDA allocation history (`gpu_window.py`, `gpu_memory.py`): when torch's allocated
  CUDA memory rose in each of the last two epochs, or a `gpu_memory_growth` finding
  arrived: recorded for two epochs, the allocations that stayed named by their stacks.
- tracemalloc (`slices.py`, `memory.py`): when host memory growth is suspected (a
  `host_memory_growth` finding arrived, or RSS rose by `rss_rise_bytes` in each of the last
  two epochs and by `RSS_RISE_SHARE` of the process in all: a rise no healthy run shows):
  short tracing slices across two epoch boundaries, never whole epochs. The record names
  the sites that grew in every slice, or says the growth is not in Python objects. The
  epochs a profiler capture fell in (and `CAPTURE_SETTLE` after it) trigger neither this
  on RSS alone nor a slow stack window: the profiler's own memory and slowdown are the
  hook's.

At most one window of each kind is open at a time, and a run gets a few of each at most;
nothing runs between windows. EPOCHWATCH_EXPLAIN=0 keeps all of it off (hook.py).
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from epochwatch.analysis.series import finite_number as _num
from epochwatch.explain.added import added_time, describe
from epochwatch.explain.captures import Captures
from epochwatch.explain.frames import INPUT, Place, site
from epochwatch.explain.gpu_window import GpuWindows
from epochwatch.explain.memory import (
    NATIVE_SHARE,
    Sizes,
    consistent,
    fed_by,
    grown_sites,
    memory_summary,
    named_sites,
    traced_growth,
)
from epochwatch.explain.slices import SliceLimits, Slicer
from epochwatch.explain.stacks import RATE_HZ, Profile, StackWindow
from epochwatch.trace.schema import EXPLAIN

SLOWDOWN = "slowdown"
RSS_RISE_SHARE = 0.01  # of the process: two epochs' rise that suspects a leak on RSS alone
CAPTURE_SETTLE = 2  # epochs after a profiler capture whose RSS rise is still the hook's own
HOST_MEMORY = "host_memory_growth"
MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    rate_hz: float = RATE_HZ
    stack_seconds: float = 30.0  # a stack window's time limit
    min_samples: int = 60  # a stack window spans epochs until it has this many samples...
    max_epochs: int = 3  # ...or this many epochs
    slow_ratio: float = 1.3  # an epoch this much slower than the baseline is slow
    slow_floor: float = 0.02  # and at least this many seconds slower
    rss_rise_bytes: int = 2 * MIB  # an epoch's RSS rise that, twice in a row, suspects a leak
    stack_windows: int = 3  # slow windows per run (the baseline is extra)
    memory_windows: int = 2
    profile_seconds: float = 10.0  # a framework profiler capture's time limit
    slices: SliceLimits = field(default_factory=SliceLimits)  # a memory window's (slices.py)


@dataclass
class _Stack:
    window: StackWindow
    purpose: str  # "baseline" or SLOWDOWN
    epochs: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # in the run's epoch records


@dataclass
class _Memory:
    slicer: Slicer
    position: int  # in the run's epoch records, when the window opened
    reported: bool = False  # what grew was said; the window cools down (slices.py)


class Explainer:
    """Listens to a run's records; opens and closes the windows; emits `explain` records.

    `emit(type, **fields)` writes a record (Recorder.emit); `charge(seconds)` adds the
    windows' cost to the hook's overhead (Recorder.add_overhead).
    """

    def __init__(
        self,
        emit: Callable[..., None],
        charge: Callable[[float], None] | None = None,
        limits: Limits | None = None,
        profile_dir: Callable[[], str] | None = None,
        profiler: Callable[[], Any] | None = None,
        cuda_history: Callable[[], Any] | None = None,
    ) -> None:
        self.emit = emit
        self.charge = charge or (lambda _s: None)
        self.limits = limits or Limits()
        # The framework's profiler (integrations/tf_profile.TFProfiler) or None, asked for
        # when a capture is wanted; where its captures go (captures.py).
        self._profiler_of = profiler or (lambda: None)
        # torch's CUDA allocation history (integrations/torch_cuda_history.py) or None.
        self._cuda_history_of = cuda_history or (lambda: None)
        self.profile_dir = profile_dir
        self._lock = threading.Lock()
        self.explained: list[dict[str, Any]] = []
        self._outbox: list[dict[str, Any]] = []  # explain records to write (_send)
        self._reset()

    def _reset(self) -> None:
        self._seconds: list[float] = []
        self._rss: list[int | None] = []
        self._ends: list[float] = []  # perf_counter at each epoch record: the epochs' lengths
        self._cpu_ends: list[float] = []  # ...and the training thread's CPU time (slices.py)
        self._epoch_numbers: list[int] = []
        self._steps: int | None = None  # the last epoch's steps
        self._boundary_work = 0.0  # ...and its validation and on_epoch_end callbacks' seconds
        self._stack: _Stack | None = None
        self._memory: _Memory | None = None
        self._base: Profile | None = None
        self._base_epochs: list[int] = []
        self._base_positions: list[int] = []
        # Per epoch record: the input producer's measured seconds and code (input_wait.py)
        self._produced: list[tuple[float, str, str] | None] = []
        self._base_seconds = 0.0
        self._slow_armed = self._memory_armed = False
        self._slow_windows = self._memory_windows = 0
        self._slow_explained_at = 0.0  # epoch seconds when a slowdown was last explained
        self._thread: int | None = None
        self._traced_positions: set[int] = set()  # epochs slowed by tracemalloc: no slowdown trigger
        # ...and those a profiler capture fell in: no slowdown trigger, no memory trigger on RSS
        self._captured_positions: set[int] = set()
        self._settling = -1  # epochs still counted as a capture's, after it was read
        self._warmups: set[int] = set()  # later fits' first epochs (_on_fit_start): no slowdown trigger
        self._fit_first: int | None = None  # ...and the current one's position, once a later fit began
        self._fit_quickest = float("inf")  # ...its quickest after the warm-up, before the two judged
        self._planned: int | None = None  # the epochs the current fit plans (fit_start), if more than one
        self._captures = Captures(self._profiler_of, self.profile_dir, limit=self.limits.profile_seconds)
        self._gpu = GpuWindows(self._cuda_history_of)

    # -- the listener ------------------------------------------------------------------

    def on_record(self, rec: dict[str, Any]) -> None:
        kind = rec.get("type")
        with self._lock:
            if kind == "epoch":
                self._on_epoch(rec)
            elif kind in ("finding", "finding_update"):
                self._on_finding(rec)
            elif kind == "fit_start":
                self._on_fit_start(rec)
            elif kind == "run_start":
                self.close()
                self._reset()
                self.explained = []
            elif kind == "run_end":  # a notebook's fit ends its run without the finishers
                self.close()
        self._send()

    def _send(self) -> None:
        """Write what the windows found, outside this object's lock: the Recorder takes its
        own lock to write, and calls this object's listener holding it (one lock order)."""
        with self._lock:
            outbox, self._outbox = self._outbox, []
        for fields in outbox:
            self.emit(EXPLAIN, **fields)

    def finish(self) -> None:
        """The run ends: a slow window that saw an epoch end says what it saw (a run that
        ends soon after its slowdown was suspected still gets it), a comparison of
        slices taken is said too (those seen so far), and so is a profiler capture of slow
        steps taken or under way; the rest stops unsaid."""
        with self._lock:
            open_ = self._stack
            if open_ is not None and open_.purpose == SLOWDOWN and open_.epochs:
                self._end_stack(open_, open_.epochs[-1])
            memory = self._memory
            if memory is not None:
                self._memory = None
                slices = memory.slicer.stop()
                if slices and not memory.reported:
                    self._report_memory(memory, slices)
            if self._epoch_numbers:
                captured = self._captures.finish(self._epoch_numbers[-1])
                self.charge(self._captures.slowed_steps())
                if captured is not None:
                    self._write(explains=SLOWDOWN, **captured)
            self.close()
        self._send()

    def close(self) -> None:
        """Stop whatever is open, writing nothing."""
        if self._stack is not None:
            self._stack.window.close(0, 0.0)
            self._stack = None
        if self._memory is not None:
            self._memory.slicer.stop()
            self._memory = None
        self._captures.close()
        self._gpu.close()

    def _on_finding(self, rec: dict[str, Any]) -> None:
        if rec.get("kind") == SLOWDOWN and not self._explained(SLOWDOWN) and rec.get("ended_epoch") is None:
            self._slow_armed = True
        elif rec.get("kind") == HOST_MEMORY and not self._explained(HOST_MEMORY) and self._memory is None:
            self._memory_armed = True
        elif not self._explained(str(rec.get("kind"))):
            self._gpu.on_finding(str(rec.get("kind")))

    def _on_fit_start(self, rec: dict[str, Any]) -> None:
        """A later fit of several epochs begins with a warm-up epoch, as the run's first fit
        does (its functions traced again for a new model or compile, its iterator made): in a
        loop of fits that epoch is compared with nothing, and no stack window spans into it,
        or a window would find the added time in tracing. Fits of one epoch each are alike
        and stay one series."""
        epochs = rec.get("epochs")  # planned: a fit of several says how long the run goes on
        self._planned = epochs if isinstance(epochs, int) and epochs > 1 else None
        if self._planned is None or not self._seconds:
            self._fit_first = None  # the first fit, or fits of one epoch: the run's baseline
            return
        self._fit_first = len(self._seconds)  # the position its first epoch record will have
        self._fit_quickest = float("inf")
        self._warmups.add(self._fit_first)
        open_ = self._stack
        if open_ is None:
            return
        if open_.epochs:
            self._end_stack(open_, open_.epochs[-1])
            return
        # Opened at the last fit's last epoch: taken again after this fit's warm-up epoch.
        self._stack = None
        open_.window.close(0, 0.0)
        if open_.purpose == "baseline":
            self._base_epochs = []
        else:
            self._slow_windows -= 1
            self._slow_armed = True

    def _explained(self, kind: str) -> bool:
        return any(e["explains"] == kind for e in self.explained)

    def _on_epoch(self, rec: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        self._thread = threading.get_ident()  # epoch records are written on the training thread
        seconds = _num(rec.get("seconds")) or 0.0
        host = rec.get("host")
        rss = _num(host.get("rss_bytes")) if isinstance(host, dict) else None
        self._seconds.append(seconds)
        self._produced.append(_producer(rec))
        self._rss.append(int(rss) if rss is not None else None)
        self._ends.append(t0)
        self._cpu_ends.append(time.thread_time())
        number = rec.get("epoch")
        epoch = number if isinstance(number, int) else len(self._seconds) - 1
        self._epoch_numbers.append(epoch)
        self._step_stack(epoch, seconds)
        steps = rec.get("steps")
        self._steps = steps if isinstance(steps, int) and steps > 0 else None
        callbacks = rec.get("callbacks")
        self._boundary_work = (_num(rec.get("val_seconds")) or 0.0) + (
            (_num(callbacks.get("seconds")) or 0.0) if isinstance(callbacks, dict) else 0.0
        )
        self._step_memory()
        # The epoch that ended held a capture or its read-back, or came right after one: TF's
        # profiler's native memory settles over the next epochs (+3-5 MiB in each of two).
        self._settling = CAPTURE_SETTLE if self._captures.capturing else self._settling - 1
        if self._settling >= 0:
            self._captured_positions.add(len(self._seconds) - 1)
        captured = self._captures.on_epoch(epoch, seconds, self._steps, self._epochs_left(epoch))
        self.charge(self._captures.slowed_steps())
        if captured is not None:
            self._write(explains=SLOWDOWN, **captured)
        gpu = self._gpu.on_epoch(epoch, rec)
        if gpu is not None:
            self._write(**gpu)
        self._suspect()
        self._open(epoch)
        self.charge(time.perf_counter() - t0)

    def _epochs_left(self, epoch: int) -> int | None:
        """Epochs the fit has still to run by its plan, or None where no plan says (a
        custom loop, a loop of one-epoch fits)."""
        return None if self._planned is None else max(0, self._planned - epoch - 1)

    # -- stack windows ---------------------------------------------------------------------

    def _step_stack(self, epoch: int, seconds: float) -> None:
        open_ = self._stack
        if open_ is None:
            return
        open_.epochs.append(epoch)
        open_.seconds.append(seconds)
        open_.positions.append(len(self._seconds) - 1)
        window, lim = open_.window, self.limits
        done = (
            len(open_.epochs) >= lim.max_epochs
            or window.open_seconds >= lim.stack_seconds
            or window.samples >= lim.min_samples
        )
        if done:
            self._end_stack(open_, epoch)

    def _end_stack(self, open_: _Stack, epoch: int) -> None:
        self._stack = None
        window = open_.window
        profile = window.close(len(open_.epochs), sum(open_.seconds) / len(open_.seconds))
        self.charge(profile.cpu_seconds)
        if open_.purpose == "baseline":
            self._base, self._base_epochs = profile, list(open_.epochs)
            self._base_positions = list(open_.positions)
            self._base_seconds = min(open_.seconds)
            self._captures.after_baseline(profile)
            return
        where = added_time(self._base, profile, self._measured_producer(open_.positions))
        self._slow_explained_at = profile.epoch_seconds
        self._captures.after_slow(where)  # which ops: the framework's profiler, from the next epoch
        self._write(
            explains=SLOWDOWN,
            method="stack_sampling",
            epoch=epoch,
            epochs=open_.epochs,
            baseline_epochs=self._base_epochs,
            epoch_seconds=round(profile.epoch_seconds, 6),
            baseline_epoch_seconds=round(self._base.epoch_seconds, 6) if self._base else None,
            samples=profile.samples,
            baseline_samples=self._base.samples if self._base else 0,
            rate_hz=self.limits.rate_hz,
            window_seconds=round(profile.seconds, 3),
            cost_seconds=round(profile.cpu_seconds, 6),
            where=where,
            summary=describe(where),
        )

    def _measured_producer(self, positions: list[int]) -> tuple[Place, float, float] | None:
        """The input producer's place with its seconds per epoch at the baseline and in the
        slow window, from its clock (what the epoch records say), when both windows have it."""

        def mean(at: list[int]) -> tuple[float, str, str] | None:
            rows = [self._produced[i] for i in at if i < len(self._produced)]
            if not rows or any(r is None for r in rows):
                return None
            known = [r for r in rows if r is not None]
            return statistics.fmean(r[0] for r in known), known[-1][1], known[-1][2]

        base, slow = mean(self._base_positions), mean(positions)
        if base is None or slow is None or base[1:] != slow[1:]:
            return None
        path, _, line = slow[2].rpartition(":")
        where = site((path, int(line) if line.isdigit() else 0, slow[1]))
        place = Place(INPUT, f"{INPUT}: {slow[1]}", where, slow[1])
        return place, base[0], slow[0]

    # -- memory windows --------------------------------------------------------------------

    def _step_memory(self) -> None:
        memory = self._memory
        if memory is None:
            return
        slicer = memory.slicer
        if self._tell(slicer):
            self._traced_positions.add(len(self._seconds) - 1)  # slowed a little: no slowdown trigger
        if not memory.reported and (slicer.complete or slicer.finished):
            memory.reported = True
            slices = slicer.sizes()
            if slices:  # else no slice caught a boundary: the window ends unsaid
                self._report_memory(memory, slices)
        if slicer.finished:
            self._memory = None

    def _tell(self, slicer: Slicer) -> bool:
        """An epoch boundary to the memory window, with the last epochs' lengths, epoch
        record to epoch record (what a slice's timers predict the next boundary from),
        and the training thread's CPU in them (what a slice's cost is measured on)."""
        intervals = [b - a for a, b in itertools.pairwise(self._ends[-4:])]
        cpus = [b - a for a, b in itertools.pairwise(self._cpu_ends[-4:])]
        return slicer.on_boundary(intervals, self._steps, self._boundary_work, cpus)

    def _span(self, memory: _Memory) -> str:
        """The epochs the RSS's rise was read over (those of the window and the two before
        it), as Keras counts them."""
        if not self._epoch_numbers:
            return ""
        first, last = self._epoch_numbers[max(0, memory.position - 2)], self._epoch_numbers[-1]
        return f"epochs {first + 1}-{last + 1}" if last > first else ""

    def _report_memory(self, memory: _Memory, slices: list[Sizes]) -> None:
        # The median epoch's rise over the window's epochs (and the two before it, which
        # suspected it): one epoch that frees much (a cache dropped) does not hide a leak.
        rss = [r for r in self._rss[max(0, memory.position - 2) :] if r is not None]
        rises = [b - a for a, b in itertools.pairwise(rss)]
        rss_growth = int(statistics.median(rises)) if rises else None
        sites = grown_sites(consistent(slices, memory.slicer.at, rss_growth), rss_growth)
        traced = traced_growth(sites)
        produced = next((p for p in reversed(self._produced) if p is not None), None)
        producer = produced[1] if produced is not None else None
        # What the producer grew is seen in part (memory.fed_by): no verdict of native memory.
        in_python = bool(fed_by(sites, producer)) or not (
            rss_growth is not None and rss_growth > 0 and traced < NATIVE_SHARE * rss_growth
        )
        where = named_sites(sites, traced, in_python)
        slicer = memory.slicer
        self.charge(slicer.cpu_seconds)
        numbers = [memory.position, len(self._rss) - 1]
        self._write(
            explains=HOST_MEMORY,
            method="tracemalloc",
            epoch=self._epoch_numbers[-1],
            epochs=[self._epoch_numbers[i] for i in numbers],
            traced_bytes_per_epoch=traced,
            rss_bytes_per_epoch=rss_growth,
            in_python=in_python,
            **slicer.figures(),
            where=where,
            summary=memory_summary(where, traced, rss_growth, in_python, producer, over=self._span(memory)),
        )

    # -- triggers ----------------------------------------------------------------------------

    def _suspect(self) -> None:
        lim = self.limits
        # The quickest epoch the baseline window covered: the first epochs after the first
        # still carry warm-up (a test function traced, caches filled). A later fit is held
        # to its own quickest epoch before the two judged: a sweep's fits differ by design
        # (another batch size, another width), and a fit that is slower than the first
        # throughout is no slowdown.
        base = self._base_seconds if self._base is not None else None
        if self._fit_first is not None:
            older = len(self._seconds) - 3  # the newest epoch before the two judged: once each
            if older > self._fit_first:
                self._fit_quickest = min(self._fit_quickest, self._seconds[older])
            base = self._fit_quickest if base and self._fit_quickest < float("inf") else None
        last = self._seconds[-2:]
        recent = {len(self._seconds) - 1, len(self._seconds) - 2}
        apart = self._traced_positions | self._captured_positions | self._warmups
        if base and len(last) == 2 and self._slow_windows < lim.stack_windows and not recent & apart:
            bar = max(base * lim.slow_ratio, base + lim.slow_floor)
            if self._slow_explained_at:
                bar = max(bar, self._slow_explained_at * 1.5)  # again only once it grew on
            if all(s > bar for s in last):
                self._slow_armed = True
        rss = self._rss[1:][-3:]  # the first epoch's rise is the framework warming up
        quiet = self._memory_windows == 0  # once a run on RSS alone; a finding may ask again
        # A rise in an epoch a profiler capture fell in is the hook's own (TF's profiler
        # left +25-30 MiB of native memory in a healthy loop, which opened a memory window
        # whose slices added more, and the run was told its memory grew).
        own = recent & self._captured_positions
        if quiet and not own and len(rss) == 3 and all(r is not None for r in rss):
            a, b, c = (int(r or 0) for r in rss)
            # On RSS alone for a rise a healthy run seldom shows after its first epoch (each
            # epoch by rss_rise_bytes, and RSS_RISE_SHARE of the process in all); a smaller
            # leak waits for its host_memory_growth finding. A window's slices cost a few
            # percent of the epochs they span, so a false alarm is cheap.
            each = lim.rss_rise_bytes
            if b - a >= each and c - b >= each and c - a >= RSS_RISE_SHARE * a:
                self._memory_armed = True

    def _open(self, epoch: int) -> None:
        lim, thread = self.limits, self._thread
        if thread is None:
            return
        if self._stack is None:
            warmed = len(self._seconds) == 1 or len(self._seconds) - 1 in self._warmups
            if self._base is None and not self._base_epochs and warmed:
                self._stack = _Stack(StackWindow(thread, lim.rate_hz, lim.stack_seconds), "baseline")
                self._base_epochs = [-1]  # taken once
            elif self._slow_armed and self._slow_windows < lim.stack_windows:
                self._slow_armed = False
                self._slow_windows += 1
                self._stack = _Stack(StackWindow(thread, lim.rate_hz, lim.stack_seconds), SLOWDOWN)
        if self._memory is None and self._memory_armed and self._memory_windows < lim.memory_windows:
            self._memory_armed = False
            self._memory_windows += 1
            slicer = Slicer(lim.slices)
            if slicer.owned:
                self._memory = _Memory(slicer, len(self._seconds) - 1)
                self._tell(slicer)

    def _write(self, **fields: Any) -> None:
        rec = {k: v for k, v in fields.items() if v is not None}
        self.explained.append(rec)
        self._outbox.append(rec)


def _producer(rec: dict[str, Any]) -> tuple[float, str, str] | None:
    """(seconds, function, site) of the epoch's input producer, from its record."""
    seconds = _num(rec.get("input_producer_seconds"))
    function, site = rec.get("input_producer_function"), rec.get("input_producer_site")
    if seconds is None or not isinstance(function, str) or not isinstance(site, str):
        return None
    return seconds, function, site
