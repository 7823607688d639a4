"""The watcher's file-system events: one watchdog observer, each event turned into the
paths it names and handed to the watcher (`on_path`), on the observer's thread.

`DirWatcher` (dirwatch.py) holds one EventSource. Without watchdog, or when a watch cannot
be added, `schedule` says why and the watcher polls that root instead.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable
from typing import Any


class EventSource:
    """The observer, started at the first `schedule`; it calls `dispatch` for each event."""

    def __init__(self, on_path: Callable[[str], None], on_error: Callable[[str], None]) -> None:
        self._on_path = on_path
        self._on_error = on_error
        self._observer: Any = None
        self.failed: str | None = None  # why there is no observer
        self._event_filter: list[type] | None = None
        self.cpu_seconds = 0.0  # the observer thread's CPU time after its latest event

    def schedule(self, path: str, recursive: bool) -> tuple[Any, str | None]:
        """(watch, None), or (None, why) when events cannot be had for `path`."""
        observer = self._ensure_observer()
        if observer is None:
            return None, self.failed
        try:
            return observer.schedule(self, path, recursive=recursive, event_filter=self._event_filter), None
        except Exception as exc:
            return None, describe(exc)

    def _ensure_observer(self) -> Any:
        if self._observer is not None or self.failed is not None:
            return self._observer
        try:
            from watchdog import events
            from watchdog.observers import Observer

            self._event_filter = [
                events.FileCreatedEvent,
                events.DirCreatedEvent,
                events.FileModifiedEvent,
                events.FileClosedEvent,
                events.FileDeletedEvent,
                events.DirDeletedEvent,
                events.FileMovedEvent,
                events.DirMovedEvent,
            ]
            # watchdog warns when a directory moved back in (or created while its
            # parent's watch is being set up) reuses a watch descriptor: harmless
            # bookkeeping, but a new message per directory on the training's stderr.
            warnings.filterwarnings(
                "ignore",
                message="Callback with id",
                category=RuntimeWarning,
                module=r"watchdog\.observers\.inotify",
            )
            observer = Observer()
            observer.start()
        except Exception as exc:
            self.failed = describe(exc)
            return None
        self._observer = observer
        return observer

    def unschedule(self, watch: Any) -> None:
        observer = self._observer
        if observer is None:
            return
        with contextlib.suppress(Exception):  # already gone (its directory was deleted)
            observer.unschedule(watch)

    def dispatch(self, event: Any) -> None:
        """Called by the observer: the paths an event names; never raises into it."""
        try:
            kind = event.event_type
            if kind in ("opened", "closed_no_write") or (event.is_directory and kind == "modified"):
                return
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                if raw:
                    self._on_path(os.fsdecode(raw))
        except Exception as exc:
            self._on_error(f"directory watcher error: {type(exc).__name__}: {exc}")
        self.cpu_seconds = time.thread_time()

    def close(self) -> None:
        """Stop and join the observer and its emitters."""
        observer = self._observer
        if observer is not None:
            with contextlib.suppress(Exception):  # a broken watchdog must not break close()
                observer.stop()
                observer.join()


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
