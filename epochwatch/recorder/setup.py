"""A run's set-up, as the Recorder holds it: the samplers, directory watching and the
environment fingerprint of run_start, and the caches the warm-up thread fills first.

It writes `watch` records through the `write(type_, **fields)` it is handed, under the
Recorder's lock (the Recorder calls it with the lock held).
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from typing import Any

from epochwatch import envvars
from epochwatch.guard import Guard
from epochwatch.samplers.base import Sampler

EpochSource = Callable[[], "dict[str, Any] | None"]
PART_DIRS = "directory watching"


class RunSetup:
    def __init__(self, environ: dict[str, str], guard: Guard, write: Callable[..., None]) -> None:
        self._environ = environ
        self._guard = guard
        self._write = write
        self.samplers: list[Sampler] = []
        self.dirs: Any = None  # the DirWatcher, once watching started
        self._spare_dirs: Any = None  # a watcher started early, by the warm-up thread
        self._samplers_made = False
        self._watched: dict[str, str] = {}
        self._pending: list[tuple[str, str]] = []
        self.fingerprint_sources: dict[str, EpochSource] = {}

    def prepare(self) -> None:
        """On the warm-up thread: the samplers (NVML starts on its own thread) and a
        running directory watcher, so the run's start does not wait for thread starts."""
        from epochwatch.samplers.process import started_dir_watcher

        self.make_samplers()
        if self._spare_dirs is None:
            self._spare_dirs = self._guard.run(PART_DIRS, started_dir_watcher, None)

    def reopen(self) -> None:
        """A new run in the same process: new samplers, watched directories carry over."""
        self.samplers, self.dirs, self._spare_dirs, self._samplers_made = [], None, None, False
        self._pending = list(self._watched.items())

    def make_samplers(self) -> None:
        if self._samplers_made:
            return
        self._samplers_made = True
        from epochwatch.samplers import process

        for name, make in (("host", process.host), ("gpu", process.gpu)):
            sampler = self._guard.run(f"{name} sampler", functools.partial(make, os.getpid()), None)
            if sampler is not None:
                self.samplers.append(sampler)
                if callable(getattr(sampler, "prime", None)):  # the GPU's: starts NVML on its thread
                    self._guard.run(f"{name} sampler", sampler.prime, None)  # type: ignore[attr-defined]

    def prime(self) -> None:
        """Epoch 0 gets its deltas (CPU time). The GPU sampler primes on its thread (NVML's
        start), usually long before (warm-up); the inventory does not wait for it."""
        for sampler in self.samplers:
            prime = getattr(sampler, "prime", None)
            self._guard.run(f"{sampler.name} sampler", prime if callable(prime) else sampler.sample, None)

    def watch(self, path: str | os.PathLike[str], role: str) -> None:
        """Watch a directory's growth from now, or from the run's start."""
        absolute = os.path.abspath(os.fspath(path))
        if absolute in self._watched:
            return
        self._watched[absolute] = role
        if self.dirs is None:
            self._pending.append((absolute, role))
        else:
            self._watch_now(absolute, role)

    def start_watching(self) -> None:
        """At the run's start: the watcher, the default directories and those asked for."""
        self.dirs = self._guard.run(PART_DIRS, self._watcher, None)  # None once watching is off
        if self.dirs is None:
            return
        extra = self._environ.get(envvars.EPOCHWATCH_WATCH, "")
        defaults = [(tempfile.gettempdir(), "temp")] + [
            (p, "user") for p in extra.split(os.pathsep) if p.strip()
        ]
        for path, role in defaults:
            absolute = os.path.abspath(path)
            if absolute not in self._watched:
                self._watched[absolute] = role
                self._pending.append((absolute, role))
        pending, self._pending = self._pending, []
        for path, role in pending:
            self._watch_now(path, role)

    def fingerprint(self) -> dict[str, Any]:
        """run_start's `env`: the host, the samplers' inventories, the job, the sources'."""
        from epochwatch.identity import identity
        from epochwatch.samplers.process import fingerprint

        env = fingerprint(self.samplers, self._guard)
        distributed = identity(self._environ, job_id=self._environ.get(envvars.EPOCHWATCH_JOB_ID))
        if distributed:
            env["distributed"] = distributed  # the job and this worker's place in it
        for name, source in self.fingerprint_sources.items():
            block = self._guard.run(name, source, None)
            if block:
                env[name] = block
        return env

    def close(self) -> None:
        for sampler in self.samplers:
            self._guard.run(f"{sampler.name} sampler", sampler.close, None)
        if self.dirs is not None:
            self._guard.run(PART_DIRS, self.dirs.close, None)

    @property
    def cpu_seconds(self) -> float:
        """The samplers' and the watcher's threads' CPU time so far."""
        parts: list[Any] = [self.dirs, *self.samplers]
        return sum(float(getattr(p, "cpu_seconds", 0.0) or 0.0) for p in parts)

    def _watcher(self) -> Any:
        from epochwatch.samplers.dirs import DirsSampler
        from epochwatch.samplers.process import started_dir_watcher

        watcher = self._spare_dirs or started_dir_watcher()
        self.samplers.append(DirsSampler(watcher))
        return watcher

    def _watch_now(self, path: str, role: str) -> None:
        ok = self._guard.run(PART_DIRS, lambda: self.dirs.watch(path, role), False)
        if ok is not False:
            self._write("watch", path=path, role=role)


def warm_caches() -> None:
    """On the warm-up thread: what the run's start would otherwise import or compute."""
    import platform

    from epochwatch.fingerprint import package_versions

    package_versions()  # fills the cache of installed-package lookups
    platform.platform()  # caches uname -p, a subprocess (~40 ms)
    import epochwatch.analysis.guarded
    import epochwatch.analysis.online
    import epochwatch.analysis.worker
    import epochwatch.samplers.dirs  # noqa: F401
