"""Report each failure of a part of epochwatch once, then switch that part off.

The hook runs inside someone else's training. Whatever goes wrong in a sampler, an
integration or the writer must never reach the training code, must not spam its log
every epoch, and must not keep costing time: so the first error of a part is written
to stderr in one line, and the part is disabled for the rest of the process.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def say(message: str) -> None:
    """One line on stderr, prefixed so users know who is talking; never raises. In a
    process whose `epochwatch` logger has a handler (the daemon's log: cli/daemon.py), the
    line goes there instead, in the log's one format, not as a bare line mixed into it."""
    log = logging.getLogger("epochwatch")
    if log.handlers:
        with contextlib.suppress(Exception):
            log.warning("%s", message)
            return
    with contextlib.suppress(Exception):
        sys.stderr.write(f"epochwatch: {message}\n")
        sys.stderr.flush()


class Guard:
    """Tracks which parts failed; `run` calls a part unless it failed before."""

    def __init__(self) -> None:
        self._disabled: dict[str, str] = {}
        self._lock = threading.Lock()

    def enabled(self, part: str) -> bool:
        return part not in self._disabled

    def disable(self, part: str, why: str) -> None:
        with self._lock:
            if part in self._disabled:
                return
            self._disabled[part] = why
        say(f"{part} disabled: {why}")

    def run(self, part: str, fn: Callable[[], T], default: T) -> T:
        """Call fn() unless `part` is disabled; on any exception disable it and return default."""
        if part in self._disabled:
            return default
        try:
            return fn()
        except Exception as exc:
            self.disable(part, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
            return default

    @property
    def disabled_parts(self) -> dict[str, str]:
        """The live mapping (read-only use: `part in guard.disabled_parts` on hot paths)."""
        return self._disabled

    @property
    def disabled(self) -> dict[str, str]:
        return dict(self._disabled)
