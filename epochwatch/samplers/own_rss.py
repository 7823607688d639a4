"""This process's RSS, the one reading the hook takes many times a run (intervals, fit
ends, inference windows): one small /proc read, and no psutil import until a platform
without /proc needs it, so importing the hook's recorder costs nothing more. And giving
back what the hook's own work freed (`trim_heap`), so that its RSS is the run's."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def own_rss_bytes() -> int | None:
    """This process's RSS in bytes, or None when it cannot be read."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes  # here: the hook's import pays for none of it
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc (musl, macOS): its allocator gives pages back on its own terms


def trim_heap() -> None:
    """Give the allocator's free pages back to the system (glibc's `malloc_trim`), after
    the hook's own bulky work: what it freed, glibc keeps, and the run's RSS was larger by
    it and judged to grow. A profiler capture's events once read (an LSTM's 20 profiled
    steps: +165 MiB, all given back by a trim), a save's hashing and inspection on the hook's
    worker thread (whose arena is not the training thread's: tensorflow#7946's loop with
    max_to_keep=3 grew 737 -> 809 MiB hooked against 727 -> 748 plain, said as a leak)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
