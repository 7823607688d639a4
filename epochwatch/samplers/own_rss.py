"""This process's RSS, the one reading the hook takes many times a run (intervals, fit
ends, inference windows): one small /proc read, and no psutil import until a platform
without /proc needs it, so importing the hook's recorder costs nothing more."""

from __future__ import annotations

import os

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
