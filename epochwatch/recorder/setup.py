"""A run's set-up: the warm-up thread, the samplers, directory watching and the
environment fingerprint of run_start.

A mix-in of the Recorder: it shares the Recorder's lock, guard and parts.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch import envvars
from epochwatch.guard import Guard
from epochwatch.samplers.base import Sampler
from epochwatch.trace import schema

EpochSource = Callable[[], "dict[str, Any] | None"]


class Setup:
    run_id: str
    environ: dict[str, str]
    guard: Guard
    warmed_up: threading.Event
    _lock: threading.RLock
    _started: bool
    _samplers: list[Sampler]
    _samplers_made: bool
    _fingerprint_sources: dict[str, EpochSource]
    _dirs: Any
    _spare_dirs: Any
    _watched: dict[str, str]
    _pending_watches: list[tuple[str, str]]
    _analysis: Any
    _warmup_cpu: float

    if TYPE_CHECKING:  # the Recorder's, not this mix-in's

        def _write(self, rec: dict[str, Any]) -> None: ...
        def _new_analysis(self) -> Any: ...

    def prepare_in_background(self) -> None:
        """On a thread, now: the imports and threads the run's start needs, so it pays for
        readings, not imports (CPU counted like the other threads'; harmless if late)."""

        def warm() -> None:
            try:
                import platform

                from epochwatch.fingerprint import package_versions

                with self._lock:
                    if not self._started:
                        self._setup_samplers()  # and starts NVML's initialisation on its thread
                        self._start_threads()
                package_versions()  # fills the cache of installed-package lookups
                platform.platform()  # caches uname -p, a subprocess (~40 ms)
                import epochwatch.analysis.online
                import epochwatch.analysis.worker
                import epochwatch.samplers.dirs  # noqa: F401
            except Exception:  # the run's start imports again and reports its own failures
                pass
            finally:
                self._warmup_cpu = time.thread_time()
                self.warmed_up.set()

        threading.Thread(target=warm, name="epochwatch-warmup", daemon=True).start()

    def watch(self, path: str | os.PathLike[str], role: str = "user") -> None:
        """Watch a directory's growth (bytes and files at every epoch end)."""
        absolute = os.path.abspath(os.fspath(path))
        with self._lock:
            if absolute in self._watched:
                return
            self._watched[absolute] = role
            if self._dirs is None:
                self._pending_watches.append((absolute, role))
            else:
                self._watch_now(absolute, role)

    def _watch_now(self, path: str, role: str) -> None:
        ok = self.guard.run("directory watching", lambda: self._dirs.watch(path, role), False)
        if ok is not False:
            self._write(schema.record("watch", self.run_id, path=path, role=role))

    def _start_threads(self) -> None:
        """On the warm-up thread: the analysis and directory watcher threads, so the run's
        start does not wait for thread starts (each can wait for a core when busy)."""
        from epochwatch.samplers.process import started_dir_watcher

        self._analysis = self.guard.run("online detection", self._new_analysis, None)
        if self._analysis is not None:
            self.guard.run("online detection", self._analysis.start, None)
        self._spare_dirs = self.guard.run("directory watching", started_dir_watcher, None)

    def _start_watching(self) -> None:
        if not self.guard.enabled("directory watching"):
            return

        def make() -> Any:
            from epochwatch.samplers.dirs import DirsSampler
            from epochwatch.samplers.process import started_dir_watcher

            watcher = self._spare_dirs or started_dir_watcher()
            self._samplers.append(DirsSampler(watcher))
            return watcher

        self._dirs = self.guard.run("directory watching", make, None)
        if self._dirs is None:
            return
        defaults = [(tempfile.gettempdir(), "temp")]
        extra = self.environ.get(envvars.EPOCHWATCH_WATCH, "")
        defaults += [(p, "user") for p in extra.split(os.pathsep) if p.strip()]
        for path, role in defaults:
            absolute = os.path.abspath(path)
            if absolute not in self._watched:
                self._watched[absolute] = role
                self._pending_watches.append((absolute, role))
        pending, self._pending_watches = self._pending_watches, []
        for path, role in pending:
            self._watch_now(path, role)

    def _setup_samplers(self) -> None:
        if self._samplers_made:
            return
        self._samplers_made = True
        from epochwatch.samplers import process

        for name, make in (("host", process.host), ("gpu", process.gpu)):
            sampler = self.guard.run(f"{name} sampler", functools.partial(make, os.getpid()), None)
            if sampler is not None:
                self._samplers.append(sampler)
                if callable(getattr(sampler, "prime", None)):  # the GPU's: starts NVML on its thread
                    self.guard.run(f"{name} sampler", sampler.prime, None)  # type: ignore[attr-defined]

    def _fingerprint(self) -> dict[str, Any]:
        from epochwatch.samplers.process import fingerprint

        env = fingerprint(self._samplers, self.guard)
        from epochwatch.identity import identity

        distributed = identity(self.environ, job_id=self.environ.get(envvars.EPOCHWATCH_JOB_ID))
        if distributed:
            env["distributed"] = distributed  # the job and this worker's place in it
        for name, source in self._fingerprint_sources.items():
            block = self.guard.run(name, source, None)
            if block:
                env[name] = block
        return env
