"""Whether the hook's own look inside was costing the run since the last interval record.

A profiler capture (captures.py) slows the steps it records by a third and holds the
profiler's native memory until it is read back (+45-57 MiB in a tensorflow/models-style
step loop); a tracemalloc slice (slices.py) slows what it traces two- or threefold. An
interval record written meanwhile would hand that cost to the detectors as the run's own:
the step loop was told "step time grows 16% per epoch" and "host memory grows ..., it grew
on to 843 MiB" by the hook's baseline capture. Interval records of such stretches carry
`looking_inside`, and the analysis leaves them out of the series it judges
(analysis/run.py). Epoch records need no mark: their overhead already counts the windows'
cost, and the explain controller keeps their epochs from its own triggers.

No imports: the recorder's interval writer asks it on every interval record.
"""

from __future__ import annotations

import threading


class Looking:
    """One per process, as the hook follows one training thread (anchor.STEPS)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[int] = set()  # id() of each part looking now
        self._seen = False  # a part was open since the last `since_last`

    def begin(self, part: object) -> None:
        with self._lock:
            self._open.add(id(part))
            self._seen = True

    def end(self, part: object) -> None:
        with self._lock:
            self._open.discard(id(part))

    def since_last(self) -> bool:
        """Whether any part looked inside since the last call (or is looking now)."""
        with self._lock:
            seen, self._seen = self._seen, bool(self._open)
            return seen


LOOKING = Looking()
