"""How many bytes the daemon writes for whom: per run, per uid, and a disk reserve.

The message rate (limits.py) does not bound bytes: a hook may send 1 MiB records, and
300 of them filled 300 MB. So every trace write is metered before it happens:

- a run's trace may grow to `max_trace_bytes_per_run`;
- the traces of one uid's attached runs together to `max_trace_bytes_per_uid`;
- and nothing is written while the traces' file system has less than
  `min_free_bytes` free (a reserve for the rest of the host, and for the runs that
  end: run_end is written even then).

A run_end (and the daemon's notice that a limit was hit) passes the per-run and per-uid
limits when it is small (ESSENTIAL_BYTES), so a run at its limit still ends properly.

A write over a limit raises `TraceLimit` (an OSError with errno EDQUOT) before a byte
is written, so the trace keeps only whole lines and the registry handles it like a full
disk: the run is said once, the hook keeps its records and retries with backoff. Free
space is read with statvfs at most once a second (and counted down by what the daemon
writes in between), so metering costs a few additions per record.
"""

from __future__ import annotations

import errno
import os
import time
from collections import defaultdict
from pathlib import Path

from epochwatch.daemon.config import Limits

FREE_SPACE_EVERY_SECONDS = 1.0
# The most an essential record may write past the per-run and per-uid limits: a run_end
# or a notice of the daemon's is a few hundred bytes.
ESSENTIAL_BYTES = 16 * 1024


class TraceLimit(OSError):
    """A trace write refused by a byte limit (nothing was written); `code` for the hook:
    `trace_limit` (the run's or the uid's bytes) or `disk_full` (the reserve)."""

    def __init__(self, why: str, code: str = "trace_limit") -> None:
        super().__init__(errno.EDQUOT, why)
        self.code = code


class DiskBudget:
    """The daemon's byte limits over all runs (one per daemon, on the event loop)."""

    def __init__(self, cfg: Limits, traces: Path) -> None:
        self.cfg = cfg
        self.traces = traces
        self.by_uid: dict[int, int] = defaultdict(int)
        self._free = -1
        self._free_at = float("-inf")

    def reconfigure(self, cfg: Limits) -> None:
        self.cfg = cfg

    def free_bytes(self) -> int:
        """Free bytes (for unprivileged users too: f_bavail) of the traces' file system;
        -1 when it cannot be read."""
        now = time.monotonic()
        if now - self._free_at >= FREE_SPACE_EVERY_SECONDS:
            self._free_at = now
            try:
                st = os.statvfs(self.traces)
                self._free = st.f_bavail * st.f_frsize
            except OSError:
                self._free = -1
        return self._free

    def refuse(self, uid: int, run_bytes: int, size: int, *, essential: bool = False) -> TraceLimit | None:
        """Why `size` more bytes may not go to a run of `uid` that has `run_bytes`, or None.
        An `essential` record (run_end, the one notice that says a limit was hit) of at most
        ESSENTIAL_BYTES passes the per-run and per-uid limits, never the reserve; a bigger
        one is metered like any other (30 run_end records of 900 KB wrote 27 MB past a
        4 MiB limit), and a run takes nothing after its run_end (session.py)."""
        cfg = self.cfg
        if not (essential and size <= ESSENTIAL_BYTES):
            if cfg.max_trace_bytes_per_run and run_bytes + size > cfg.max_trace_bytes_per_run:
                return TraceLimit(f"the run's trace reached its limit of {cfg.max_trace_bytes_per_run} bytes")
            if cfg.max_trace_bytes_per_uid and self.by_uid[uid] + size > cfg.max_trace_bytes_per_uid:
                return TraceLimit(
                    f"the traces of uid {uid} reached their limit of {cfg.max_trace_bytes_per_uid} bytes"
                )
        if cfg.min_free_bytes:
            free = self.free_bytes()
            if 0 <= free < cfg.min_free_bytes + size:
                return TraceLimit(
                    f"the traces' file system has {free} bytes free, under the reserve of {cfg.min_free_bytes}",
                    "disk_full",
                )
        return None

    def spend(self, uid: int, size: int) -> None:
        self.by_uid[uid] += size
        if self._free >= 0:
            self._free -= size

    def release(self, uid: int, size: int) -> None:
        """A run of `uid` ended: its trace no longer counts against the uid's limit."""
        left = self.by_uid.get(uid, 0) - size
        if left > 0:
            self.by_uid[uid] = left
        else:
            self.by_uid.pop(uid, None)


class RunMeter:
    """One run's view of the budget, held by its TraceFile."""

    def __init__(self, budget: DiskBudget, uid: int, already: int = 0) -> None:
        self.budget = budget
        self.uid = uid
        self.bytes = already
        budget.by_uid[uid] += already

    def check(self, size: int, *, essential: bool = False) -> None:
        refused = self.budget.refuse(self.uid, self.bytes, size, essential=essential)
        if refused is not None:
            raise refused

    def spent(self, size: int) -> None:
        self.bytes += size
        self.budget.spend(self.uid, size)

    def close(self) -> None:
        self.budget.release(self.uid, self.bytes)
        self.bytes = 0
