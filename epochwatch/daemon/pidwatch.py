"""Knowing at once when an attached process exits: a pidfd on the event loop.

A pidfd becomes readable when its process exits (zombie or reaped), and it keeps
naming that process even if the pid number is reused later. It is opened right after
accept and checked against the process start time the daemon recorded, so a pid reused
in between is caught too. Without pidfd support (old kernels, other systems) this
returns None and the 1 Hz sampler notices instead (NoSuchProcess), within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable


def process_start_time(pid: int) -> float | None:
    """psutil's create_time for pid, or None when there is no such (live) process."""
    if pid <= 0:
        return None
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class PidWatch:
    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd: int | None = fd
        self._loop = loop

    @classmethod
    def open(cls, pid: int, create_time: float, on_exit: Callable[[], None]) -> PidWatch | None:
        opener = getattr(os, "pidfd_open", None)
        if opener is None or pid <= 0:
            return None
        try:
            fd = opener(pid)
        except OSError:
            return None
        loop = asyncio.get_running_loop()
        watch = cls(fd, loop)
        if process_start_time(pid) != create_time:
            loop.call_soon(on_exit)  # gone, or the pid names another process already
            watch.close()
            return None

        def fire() -> None:
            watch.close()
            on_exit()

        loop.add_reader(fd, fire)
        return watch

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
