"""Whether the hook's own look inside was costing the run since the last interval or epoch record.

A profiler capture (captures.py) slows the steps it records by a third and holds the
profiler's native memory until it is read back (+45-57 MiB in a tensorflow/models-style
step loop); a tracemalloc slice (slices.py) slows what it traces two- or threefold. An
interval record written meanwhile would hand that cost to the detectors as the run's own:
the step loop was told "step time grows 16% per epoch" and "host memory grows ..., it grew
on to 843 MiB" by the hook's baseline capture. Interval records of such stretches carry
`looking_inside`, and the analysis leaves them out of the series it judges
(analysis/run.py). Epoch records are marked too, though their overhead counts the windows'
cost and the explain controller keeps their epochs from its own triggers: what a capture or
a slice leaves in the process's memory (+13 MiB after the baseline profiler capture, +20 MiB
after the slow one) stays in their RSS, and a compiled step doing more each epoch was
told "host memory grows 3.2 MiB per epoch" in 9 runs of 24 on the hook's own captures.

No imports: the recorder asks it on every interval and epoch record.
"""

from __future__ import annotations

import threading


class Looking:
    """One per process, as the hook follows one training thread (anchor.STEPS)."""

    READERS = ("interval", "epoch")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[int] = set()  # id() of each part looking now
        self._seen = dict.fromkeys(self.READERS, False)  # per reader: a part was open since its last call

    def begin(self, part: object) -> None:
        with self._lock:
            self._open.add(id(part))
            self._seen = dict.fromkeys(self.READERS, True)

    def end(self, part: object) -> None:
        with self._lock:
            self._open.discard(id(part))

    def since_last(self, reader: str = "interval") -> bool:
        """Whether any part looked inside since `reader`'s last call (or is looking now)."""
        with self._lock:
            seen = self._seen[reader]
            self._seen[reader] = bool(self._open)
            return seen


LOOKING = Looking()
