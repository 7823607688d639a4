"""The samplers the daemon runs on attached processes, all from its one sampling thread.

Each run gets a HostSampler (detailed: CPU percent and I/O too) and a view of the
daemon's one NVML session for its per-process GPU memory (`NvmlSampler.for_pid`). A
sampler that fails for another reason than the process being gone is switched off for
that run with one log line; the process being gone (psutil.NoSuchProcess) is passed up:
that is how "vanished" is seen without a pidfd.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

log = logging.getLogger("epochwatch.daemon")


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
    def __init__(self, pid: int, run_id: str, hub: NvmlHub) -> None:
        self.pid = pid
        self.run_id = run_id
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
        return out

    def close(self) -> None:
        for sampler in (self._host, self._nvml):
            if sampler is not None:
                with contextlib.suppress(Exception):
                    sampler.close()
