"""Cleanups the script asks for, counted and timed: `gc.collect()` and Keras's `clear_session()`.

They are what users add to a loop to fight a leak (keras#13118, tensorflow#33030: after
every request of a server; a callback's `on_batch_end`), and each can cost more than the
work it follows: a full collection walks every Python object (0.2 s in a TensorFlow
process), and `clear_session()` also drops what Keras built, so the next call builds and
traces it again. A server doing both after each `predict` spent 86% of its time in them,
and no record showed it. Each epoch record (an inference window's too) carries `cleanup`:
per cleanup, the calls since the previous record, their seconds and the line that called
them most. A `gc.collect()` made inside `clear_session()` is the clear_session's.

Only explicit calls pass here (the collector's own collections do not), so between them
nothing is paid: `gc.collect` is replaced by a wrapper at the hook's start, and
`clear_session` is timed inside the wrapper that counts it (integrations/keras.py).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch.integrations import patch

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

# The calling lines kept per cleanup between two records (the one called most is said).
MAX_CALLERS = 16

_BY_RECORDER: weakref.WeakKeyDictionary[Any, Cleanups] = weakref.WeakKeyDictionary()


class Cleanups:
    """The cleanups called since the last record, per name: calls, seconds, callers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._calls: dict[str, int] = {}
        self._seconds: dict[str, float] = {}
        self._callers: dict[str, dict[str, int]] = {}

    def timed(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        """`original` behind a clock that counts it as `name` (not when called inside another
        timed cleanup: Keras's clear_session collects garbage itself)."""
        local = self._local

        @functools.wraps(original)
        def cleanup(*args: Any, **kwargs: Any) -> Any:
            if getattr(local, "inside", False):
                return original(*args, **kwargs)
            local.inside = True
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                local.inside = False
                with contextlib.suppress(Exception):  # never the script's call's failure
                    self._add(name, time.perf_counter() - t0, sys._getframe(1))

        cleanup.__epochwatch__ = True  # type: ignore[attr-defined]
        return cleanup

    def _add(self, name: str, seconds: float, frame: Any) -> None:
        code = frame.f_code
        where = f"{os.path.basename(code.co_filename)}:{frame.f_lineno} {code.co_name}"
        with self._lock:
            self._calls[name] = self._calls.get(name, 0) + 1
            self._seconds[name] = self._seconds.get(name, 0.0) + seconds
            callers = self._callers.setdefault(name, {})
            if where in callers or len(callers) < MAX_CALLERS:
                callers[where] = callers.get(where, 0) + 1

    def drain(self) -> dict[str, Any] | None:
        """The record's `cleanup` block: what was called since the previous record, or None."""
        with self._lock:
            calls, seconds, callers = self._calls, self._seconds, self._callers
            self._calls, self._seconds, self._callers = {}, {}, {}
        if not calls:
            return None
        return {
            name: {
                "calls": n,
                "seconds": round(seconds[name], 6),
                "where": max(callers[name].items(), key=lambda kv: kv[1])[0],
            }
            for name, n in calls.items()
        }


def of(recorder: Recorder) -> Cleanups:
    """The recorder's one Cleanups, its epoch records' `cleanup` source from the first use."""
    found = _BY_RECORDER.get(recorder)
    if found is None:
        found = _BY_RECORDER[recorder] = Cleanups()
        recorder.add_epoch_source("cleanup", found.drain)
    return found


def install(recorder: Recorder) -> None:
    """Time the script's `gc.collect()` calls (from the hook's start: the gc module is always
    imported)."""
    patch(gc, "collect", lambda collect: of(recorder).timed("gc.collect", collect))
