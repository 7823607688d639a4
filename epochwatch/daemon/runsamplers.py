"""The samplers the daemon runs on attached processes, all from its one sampling thread.

Each run gets a HostSampler (detailed: CPU percent and I/O too) and a view of the
daemon's one NVML session for its per-process GPU memory (`NvmlSampler.for_pid`). A
sampler that fails for another reason than the process being gone is switched off for
that run with one log line; the process being gone (psutil.NoSuchProcess) is passed up:
that is how "vanished" is seen without a pidfd.

The daemon reads a process as root on behalf of the run's user, so it samples only the
process that user started: the real and effective uid must be the run's, and the
credentials (uids, gids) and the executable must stay what they were at the first
sample. A process that execs a setuid program keeps its pid but is no longer the user's
to look at: `ProcessChanged` is raised (checked before and after each sample, so a
sample straddling the exec is dropped too) and the registry stops sampling the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any

log = logging.getLogger("epochwatch.daemon")


class ProcessChanged(Exception):
    """The sampled process is no longer the one its user started (credentials or executable)."""


def identity(pid: int) -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """(uids, gids, executable's path) of a process, from /proc; OSError when gone.

    The executable is named by readlink, never followed: a stat through /proc/<pid>/exe
    reaches the user's file system (their own FUSE mount could hold the sampling thread, and
    every run's samples with it, in getattr). A binary deleted or replaced under a running
    process ("... (deleted)") is the same program to it."""
    uids: tuple[str, ...] = ()
    gids: tuple[str, ...] = ()
    with open(f"/proc/{pid}/status", "rb") as fh:
        for raw in fh:
            if raw.startswith(b"Uid:"):
                uids = tuple(raw.decode().split()[1:])
            elif raw.startswith(b"Gid:"):
                gids = tuple(raw.decode().split()[1:])
                break
    return uids, gids, os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")


class NvmlHub:
    """One NVML session for the daemon, opened on first use (NVML init costs ~100 ms)."""

    def __init__(self) -> None:
        self._root: Any = None
        self._missing = False

    def root(self) -> Any:
        if self._root is None and not self._missing:
            try:
                from epochwatch.samplers.nvml import NvmlSampler

                root = NvmlSampler()
                if root.inventory() is None:  # no library, driver or GPU (said once already)
                    root.close()
                    self._missing = True
                    return None
                self._root = root
            except Exception as exc:
                self._missing = True
                log.info("GPU sampling unavailable: %s", exc)
        return self._root

    def for_pid(self, pid: int) -> Any:
        root = self.root()
        return root.for_pid(pid) if root is not None else None

    def gpu_processes(self) -> list[dict[str, Any]] | None:
        root = self.root()
        return root.gpu_processes() if root is not None else None

    def close(self) -> None:
        if self._root is not None:
            with contextlib.suppress(Exception):
                self._root.close()
            self._root = None


class RunSamplers:
    def __init__(self, pid: int, run_id: str, hub: NvmlHub, uid: int = -1) -> None:
        self.pid = pid
        self.run_id = run_id
        self.uid = uid  # the run's (from the connection): the process must stay this user's
        self._identity: Any = None
        self._hub = hub
        self._host: Any = None
        self._nvml: Any = None
        self._started = False
        self._off: set[str] = set()

    def _start(self) -> None:
        from epochwatch.samplers.host import HostSampler

        self._started = True
        self._host = HostSampler(self.pid, detailed=True)  # NoSuchProcess if already gone
        try:
            self._nvml = self._hub.for_pid(self.pid)
        except Exception as exc:
            self._switch_off("gpu", exc)

    def _switch_off(self, part: str, exc: BaseException) -> None:
        if part not in self._off:
            self._off.add(part)
            log.warning(
                "run %s: %s sampling switched off: %s: %s", self.run_id, part, type(exc).__name__, exc
            )

    def sample(self) -> dict[str, Any]:
        """One sample (`t`, host fields flattened, `gpu`); raises psutil.NoSuchProcess when gone."""
        import psutil

        self._check_identity()
        if not self._started:
            self._start()
        out: dict[str, Any] = {"t": time.time()}
        if "host" not in self._off:
            try:
                out.update(self._host.sample())
            except psutil.NoSuchProcess:
                raise
            except Exception as exc:
                self._switch_off("host", exc)
        if self._nvml is not None and "gpu" not in self._off:
            try:
                gpu = self._nvml.sample()
                if gpu:
                    out["gpu"] = gpu
            except Exception as exc:
                self._switch_off("gpu", exc)
        self._check_identity()
        return out

    def _check_identity(self) -> None:
        """ProcessChanged unless the process is still the user's, as first seen."""
        import psutil

        try:
            now = identity(self.pid)
        except (FileNotFoundError, ProcessLookupError):
            raise psutil.NoSuchProcess(self.pid) from None
        except OSError as exc:
            raise ProcessChanged(f"its /proc entry cannot be read ({exc.strerror or exc})") from None
        uids = now[0]
        if self.uid >= 0 and (len(uids) < 2 or uids[0] != str(self.uid) or uids[1] != str(self.uid)):
            raise ProcessChanged(
                f"its real/effective uid is {'/'.join(uids[:2]) or 'unknown'}, not the run's uid {self.uid}"
            )
        if self._identity is None:
            self._identity = now
        elif now != self._identity:
            what = "credentials" if now[:2] != self._identity[:2] else "executable"
            raise ProcessChanged(f"its {what} changed (a setuid or other program was executed)")

    def close(self) -> None:
        for sampler in (self._host, self._nvml):
            if sampler is not None:
                with contextlib.suppress(Exception):
                    sampler.close()
