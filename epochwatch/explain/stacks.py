"""A bounded stack-sampling window on the training thread.

A daemon thread reads the training thread's innermost frame with `sys._current_frames()`
at `rate` Hz and counts the distinct stacks it sees. Why 100 Hz: one sample walks ~50
frames (tens of microseconds, under the GIL), so 100 Hz holds the training thread back by
well under 1% (bench/explain.py measures it), while a second of epoch still gives 100
samples: a part holding 10% of an epoch shows in ~10 of them. The window ends when the
controller closes it (at an epoch end) or at its time limit, whichever comes first;
stacks are classified once, at the end, not per sample.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from epochwatch import quiet_gc
from epochwatch.explain.frames import Frame, Place, classify, classify_other, current_stack

RATE_HZ = 100.0
OTHER_DEPTH = 48  # frames kept of other threads' stacks (their innermost)
MAX_STACKS = 20_000  # distinct stacks kept; later new ones are counted as "other"
IDLE_SECONDS = 0.05  # past the time limit, how often the sampler looks for close()


@dataclass
class Profile:
    """What one window saw: samples per place, and the wall time they stand for."""

    samples: int = 0
    seconds: float = 0.0
    epochs: int = 0
    epoch_seconds: float = 0.0  # the mean length of the epochs the window covered
    places: Counter[Place] = field(default_factory=Counter)
    cpu_seconds: float = 0.0  # the sampling thread's own CPU
    # The whole process's CPU per epoch of the window (None: not measured): what the
    # epochs' added wall time was the process's own work, not a busier host's.
    process_cpu_per_epoch: float | None = None

    def per_epoch(self, place: Place) -> float:
        """Seconds per epoch the place held, estimated from its share of the samples."""
        if not self.samples:
            return 0.0
        return self.places[place] / self.samples * self.epoch_seconds


class StackWindow:
    def __init__(self, thread_id: int, rate: float = RATE_HZ, limit_seconds: float = 30.0) -> None:
        self.thread_id = thread_id
        self.interval = 1.0 / rate
        self.limit = limit_seconds
        self._stacks: Counter[tuple[Frame, ...]] = Counter()
        self._others: Counter[tuple[Frame, ...]] = Counter()  # the process's other threads
        self.samples = 0  # of the training thread
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._process0 = time.process_time()
        self._t1: float | None = None
        self._cpu = 0.0
        self._thread = threading.Thread(target=self._run, name="epochwatch-explain-stacks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """100 samples a second: the sampler would run most of the process's collections,
        each freeing what the training made (quiet_gc.py). Collection is off while a sample
        allocates, and between samples this thread allocates nothing the collector counts
        (a sleep, a flag, a float), so the first allocation after it is back on, which
        collects, is another thread's. It is never off for longer than a sample: paused for
        the whole window (seconds), a step loop's garbage piled up, +50 MiB of RSS kept
        after it and said as the run's memory growth (tensorflow/models' step loop). Past
        its time limit it samples no more but ends only at close(): a thread's end
        allocates, and the training thread is then waiting in the join, running nothing."""
        deadline = self._t0 + self.limit
        cpu0 = time.thread_time()
        me = threading.get_ident()
        while not self._stop.is_set():
            if time.perf_counter() >= deadline:
                if self._t1 is None:
                    self._t1, self._cpu = time.perf_counter(), time.thread_time() - cpu0
                time.sleep(IDLE_SECONDS)
                continue
            time.sleep(self.interval)
            was = quiet_gc.pause()
            try:
                self._sample(me)
            finally:
                quiet_gc.resume(was)
        if self._t1 is None:
            self._t1, self._cpu = time.perf_counter(), time.thread_time() - cpu0

    def _sample(self, me: int) -> None:
        frames = sys._current_frames()
        frame = frames.pop(self.thread_id, None)
        frames.pop(me, None)
        # Other threads too: work the training waits for may run there (classify_other).
        others = [current_stack(f, OTHER_DEPTH) for f in frames.values()]
        stack = current_stack(frame) if frame is not None else None
        del frame, frames
        with self._lock:  # uncontended but for close() after a join that timed out
            if stack is not None:
                self._count(self._stacks, stack)
                self.samples += 1
            for other in others:
                self._count(self._others, other)

    @staticmethod
    def _count(counter: Counter[tuple[Frame, ...]], stack: tuple[Frame, ...]) -> None:
        if stack in counter or len(counter) < MAX_STACKS:
            counter[stack] += 1
        else:
            counter[()] += 1

    @property
    def open_seconds(self) -> float:
        return time.perf_counter() - self._t0

    def close(self, epochs: int, epoch_seconds: float) -> Profile:
        """Stop sampling (if the time limit has not) and classify what was seen."""
        self._stop.set()
        self._thread.join(2.0)
        end = self._t1 if self._t1 is not None else time.perf_counter()
        with self._lock:
            seen = list(self._stacks.items())
            others = list(self._others.items())
        counted = [(classify(stack), n) for stack, n in seen]
        # Another thread's samples count as a share of the training thread's: time it ran.
        counted += [(place, n) for stack, n in others if (place := classify_other(stack)) is not None]
        places = merged(counted)
        seconds = end - self._t0
        process = time.process_time() - self._process0
        per_epoch = process * epoch_seconds / seconds if seconds > 0 else None
        return Profile(self.samples, seconds, epochs, epoch_seconds, places, self._cpu, per_epoch)


def merged(counted: list[tuple[Place, int]]) -> Counter[Place]:
    """Samples per place, one place per (category, label) with its most sampled line as
    the site: a loop's header and body are one place, not two that halve its share."""
    by_line: Counter[Place] = Counter()
    for place, n in counted:
        by_line[place] += n
    sites: dict[tuple[str, str], Place] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for place, n in by_line.most_common():
        key = (place.category, place.label)
        sites.setdefault(key, place)  # most_common: the first seen is the most sampled
        counts[key] += n
    return Counter({sites[key]: n for key, n in counts.items()})
