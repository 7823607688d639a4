"""Collect the warnings Keras and TF print during a restore, on the restoring thread only.

`warnings.catch_warnings()` would be the obvious tool, but it swaps process-wide state
(`warnings.filters`, `warnings.showwarning`): a warning raised by another thread during
the restore would land in our list and vanish from the user's console, and two threads
restoring at once would restore each other's state. Instead, one wrapper around
`warnings.showwarning` and one logging handler are installed once and stay installed; they
note a message only when the current thread is inside `capturing()`, and always pass it
on unchanged. So the user sees exactly what they saw before, and a restore sees only its
own thread's messages.

Limits, said plainly: a warning the script's own filters ignore, or one Python already
showed once from the same place (the default "once per location" rule), never reaches
`showwarning` and so is not captured. Messages TF logs later (e.g. "Value in checkpoint
could not be found", printed when the restore status object is garbage-collected) are
outside the restore call and not captured either; the optimizer state recorded after the
restore is the evidence that does not depend on what was printed.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

MAX_MESSAGES = 20
MAX_CHARS = 500
# Loggers that TF (tf_logging), Keras (absl) and `logging.captureWarnings` write to.
LOGGERS = ("tensorflow", "absl", "keras", "py.warnings")

_local = threading.local()
_lock = threading.Lock()
_installed: dict[str, Any] = {}


def _note(text: str) -> None:
    active: list[str] | None = getattr(_local, "messages", None)
    if active is None or len(active) >= MAX_MESSAGES:
        return
    text = " ".join(text.split())[:MAX_CHARS]
    if text and text not in active:
        active.append(text)


def _showwarning(
    message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
) -> None:
    with suppress(Exception):
        _note(f"{getattr(category, '__name__', 'Warning')}: {message}")
    original = _installed.get("showwarning")
    if original is not None:
        original(message, category, filename, lineno, file, line)


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_local, "messages", None) is None:
            return
        with suppress(Exception):
            _note(f"{record.levelname} {record.name}: {record.getMessage()}")


def install() -> None:
    """Install the showwarning wrapper and the logging handler (once per process)."""
    with _lock:
        if _installed:
            return
        _installed["showwarning"] = warnings.showwarning
        warnings.showwarning = _showwarning
        handler = _Handler(level=logging.WARNING)
        for name in LOGGERS:
            logging.getLogger(name).addHandler(handler)


@contextmanager
def capturing() -> Iterator[list[str]]:
    """Collect this thread's warnings and WARNING+ log lines into the yielded list.

    Nested use (load_model calling load_weights) shares the outer list.
    """
    outer: list[str] | None = getattr(_local, "messages", None)
    if outer is not None:
        yield outer
        return
    messages: list[str] = []
    _local.messages = messages
    try:
        yield messages
    finally:
        _local.messages = None
