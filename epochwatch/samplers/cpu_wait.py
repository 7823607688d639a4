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
12), once for the process (the epoch sampler and the interval writer each take their share
of one sum); a thread's file is closed when it ends. A process with more than MAX_THREADS
threads is not read (the cost and the open files would grow with them).
"""

from __future__ import annotations

import contextlib
import os
import threading

MAX_THREADS = 256
_TASKS = "/proc/self/task"


class CpuWait:
    """The seconds the process's threads have waited for a CPU, summed: `total()` grows
    by what each thread waited since the previous call (a thread's whole wait when it is
    new). One reader a process (`OWN`): its files are held once, whoever asks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fds: dict[str, int] = {}
        self._last: dict[str, int] = {}  # nanoseconds each thread had waited, last reading
        self._total = 0  # nanoseconds, every thread's wait since the first reading
        self._pid = os.getpid()
        self._read_once = False

    def total(self) -> float | None:
        """Seconds waited since the first call (0.0 then); None where the kernel keeps no
        such count, or the process has too many threads to read."""
        with self._lock:
            if os.getpid() != self._pid:  # a forked child: the files describe the parent's threads
                self._close()
                self._pid, self._read_once, self._total = os.getpid(), False, 0
            try:
                tids = os.listdir(_TASKS)
            except OSError:
                return None
            if len(tids) > MAX_THREADS:
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
            if self._read_once:
                self._total += sum(max(0, ns - self._last.get(tid, 0)) for tid, ns in now.items())
            self._last, self._read_once = now, True
            return self._total / 1e9

    def _waited(self, tid: str) -> int | None:
        try:
            fd = self._fds.get(tid)
            if fd is None:
                fd = self._fds[tid] = os.open(f"{_TASKS}/{tid}/schedstat", os.O_RDONLY | os.O_CLOEXEC)
            return int(os.pread(fd, 128, 0).split()[1])
        except (OSError, IndexError, ValueError):
            return None

    def _close(self) -> None:
        fds, self._fds, self._last = self._fds, {}, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def _forked(self) -> None:
        """In a forked child: a new lock (another thread may have held this one at the fork,
        a background sampler's); `total()` drops the parent's files and sums (its pid check)."""
        self._lock = threading.Lock()


OWN = CpuWait()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=OWN._forked)


class Since:
    """One reader's view of OWN: the seconds waited since its previous call."""

    def __init__(self) -> None:
        self._last: float | None = None

    def __call__(self) -> float | None:
        """The seconds waited since the last call (None at the first, or when not read)."""
        total = OWN.total()
        last, self._last = self._last, total
        return None if total is None or last is None else max(0.0, total - last)
