"""The watcher's file-system events: one watchdog observer, and each event handled on
its thread by re-reading the one path it names.

A mixin of `DirWatcher` (dirwatch.py). Without watchdog, or when a watch cannot be
added, `_schedule` says why and the watcher polls that root instead.
"""

from __future__ import annotations

import contextlib
import os
import queue
import stat
import time
import warnings
from typing import Any

from epochwatch import notices
from epochwatch.guard import say
from epochwatch.samplers.dirtree import _Root, _SizeMap
from epochwatch.samplers.nofollow import ident as _ident
from epochwatch.samplers.nofollow import lstat_at as _lstat_at


class _Handler:
    """What the observer calls for each event (watchdog only needs `dispatch`)."""

    def __init__(self, watcher: _Events) -> None:
        self._watcher = watcher

    def dispatch(self, event: Any) -> None:
        self._watcher._on_event(event)


class _Events(_SizeMap):
    """The observer, the events it delivers, and what the watcher says once."""

    _roots: dict[str, _Root]
    _tasks: queue.Queue[Any]
    _observer: Any
    _observer_failed: str | None
    _handler: _Handler
    _event_filter: list[type] | None
    _said: set[str]
    _thread_cpu: dict[str, float]

    # watchdog

    def _schedule(self, path: str, recursive: bool) -> tuple[Any, str | None]:
        """(watch, None), or (None, why) when events cannot be had for `path`."""
        observer = self._ensure_observer()
        if observer is None:
            return None, self._observer_failed
        try:
            return observer.schedule(
                self._handler, path, recursive=recursive, event_filter=self._event_filter
            ), None
        except Exception as exc:
            return None, _describe(exc)

    def _ensure_observer(self) -> Any:
        if self._observer is not None or self._observer_failed is not None:
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
            self._observer_failed = _describe(exc)
            return None
        self._observer = observer
        return observer

    def _unschedule(self, watch: Any) -> None:
        observer = self._observer
        if observer is None:
            return
        with contextlib.suppress(Exception):  # already gone (its directory was deleted)
            observer.unschedule(watch)

    # events (observer thread)

    def _on_event(self, event: Any) -> None:
        """Re-read the paths an event names; never raises into the observer."""
        try:
            kind = event.event_type
            if kind in ("opened", "closed_no_write") or (event.is_directory and kind == "modified"):
                return
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                if raw:
                    self._refresh(os.fsdecode(raw))
        except Exception as exc:
            self._say_once("event", f"directory watcher error: {type(exc).__name__}: {exc}")
        self._thread_cpu["observer"] = time.thread_time()

    def _refresh(self, path: str) -> None:
        directory, name = os.path.split(path)
        walk = False
        activate = lost = None
        with self._lock:
            info = _lstat_at(directory, name)
            if info is not None and stat.S_ISREG(info.st_mode):
                if self._tracked(directory):
                    self._set(directory, name, info.st_size)
                return
            was_file = self._drop_file(directory, name)
            root = self._roots.get(path)
            if root is not None and root.state in ("scanning", "live") and _ident(path) != root.ident:
                lost = root  # deleted, or replaced (by a symlink, another directory)
            if info is None:
                if not was_file:
                    self._drop_dir(path)
            elif stat.S_ISDIR(info.st_mode):
                if root is not None and root.state == "pending" and not root.queued:
                    root.queued = True
                    activate = root
                walk = path not in self._tree and any(r.recursive and r.covers(path) for r in self._members)
        if activate is not None:
            self._tasks.put(("activate", activate))
        if lost is not None:
            self._tasks.put(("lost", lost))
        if walk:
            self._walk(path, True, None)

    def _say_once(self, key: str, message: str, per_host: bool = False) -> None:
        """Once per watcher; per_host: a fact of this machine, said once per host in training."""
        with self._lock:
            if key in self._said:
                return
            self._said.add(key)
        if per_host:
            notices.once_per_host(key, message)
        else:
            say(message)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
