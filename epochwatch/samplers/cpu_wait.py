"""How long this process's threads waited for a CPU: the one reading that tells a run slowed
by other tasks from one that waits of its own accord, whatever the host's load.

Host-wide readings (runnable tasks, PSI stall, other tasks' CPU time) say that others want
the CPU, not that this process lost it: a healthy fit among a test suite's workers on two
cores took 56 ms, then 266 ms an epoch for the same CPU time, and with the host loaded all
along nothing told that from a process that sleeps more each epoch. The scheduler counts it
per thread: the second field of /proc/self/task/<tid>/schedstat is the nanoseconds the
thread was ready to run but waited on a run queue (a sleep, I/O or a lock is not counted).
Summed over the threads, it rises with the wall time when the CPU is taken from the run, and
stays put when the run waits.

The files stay open and are re-read with pread (2 us a thread where an open and close cost
12); a thread's file is closed when it ends. A process with more than MAX_THREADS threads is
not read (the cost would grow with them).
"""

from __future__ import annotations

import contextlib
import os

MAX_THREADS = 512
_TASKS = "/proc/self/task"


class CpuWait:
    """Seconds the process's threads waited for a CPU since the previous reading."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._last: dict[str, int] = {}  # nanoseconds each thread had waited, last reading
        self._pid = os.getpid()
        self._read_once = False

    def since_last(self) -> float | None:
        """The seconds waited since the last call (None at the first, or where the kernel
        keeps no such count)."""
        if os.getpid() != self._pid:  # a forked child: the files describe the parent's threads
            self.close()
            self._pid, self._read_once = os.getpid(), False
        try:
            tids = os.listdir(_TASKS)
        except OSError:
            return None
        if len(tids) > MAX_THREADS:
            self.close()
            self._read_once = False
            return None
        now: dict[str, int] = {}
        for tid in tids:
            waited = self._waited(tid)
            if waited is not None:
                now[tid] = waited
        for gone in self._fds.keys() - now.keys():
            with contextlib.suppress(OSError):
                os.close(self._fds.pop(gone))
        if not now:
            return None
        added = sum(max(0, ns - self._last.get(tid, 0)) for tid, ns in now.items())
        first = not self._read_once
        self._last, self._read_once = now, True
        return None if first else added / 1e9

    def _waited(self, tid: str) -> int | None:
        try:
            fd = self._fds.get(tid)
            if fd is None:
                fd = self._fds[tid] = os.open(f"{_TASKS}/{tid}/schedstat", os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(fd, 128, 0).split()[1])
        except (OSError, IndexError, ValueError):
            return None

    def close(self) -> None:
        fds, self._fds, self._last = self._fds, {}, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
