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

from epochwatch.explain.frames import Frame, Place, classify, current_stack

RATE_HZ = 100.0
MAX_STACKS = 20_000  # distinct stacks kept; later new ones are counted as "other"


@dataclass
class Profile:
    """What one window saw: samples per place, and the wall time they stand for."""

    samples: int = 0
    seconds: float = 0.0
    epochs: int = 0
    epoch_seconds: float = 0.0  # the mean length of the epochs the window covered
    places: Counter[Place] = field(default_factory=Counter)
    cpu_seconds: float = 0.0  # the sampling thread's own CPU

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
        self._samples = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._t1: float | None = None
        self._cpu = 0.0
        self._thread = threading.Thread(target=self._run, name="epochwatch-explain-stacks", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = self._t0 + self.limit
        cpu0 = time.thread_time()
        try:
            while not self._stop.wait(self.interval):
                frame = sys._current_frames().get(self.thread_id)
                if frame is not None:
                    stack = current_stack(frame)
                    del frame
                    with self._lock:  # uncontended but for close() after a join that timed out
                        if stack in self._stacks or len(self._stacks) < MAX_STACKS:
                            self._stacks[stack] += 1
                        else:
                            self._stacks[()] += 1
                        self._samples += 1
                if time.perf_counter() >= deadline:
                    break
        finally:
            self._t1 = time.perf_counter()
            self._cpu = time.thread_time() - cpu0

    @property
    def samples(self) -> int:
        return self._samples

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
        return Profile(self._samples, end - self._t0, epochs, epoch_seconds, merged(seen), self._cpu)


def merged(stacks: list[tuple[tuple[Frame, ...], int]]) -> Counter[Place]:
    """Samples per place, one place per (category, label) with its most sampled line as
    the site: a loop's header and body are one place, not two that halve its share."""
    by_line: Counter[Place] = Counter()
    for stack, n in stacks:
        by_line[classify(stack)] += n
    sites: dict[tuple[str, str], Place] = {}
    counts: Counter[tuple[str, str]] = Counter()
    for place, n in by_line.most_common():
        key = (place.category, place.label)
        sites.setdefault(key, place)  # most_common: the first seen is the most sampled
        counts[key] += n
    return Counter({sites[key]: n for key, n in counts.items()})
