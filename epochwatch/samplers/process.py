"""The samplers the hook runs in a training process (the host's, and the GPUs' on a worker
thread), and the part of run_start's fingerprint they give.

NVML can hang in the driver, so the GPU sampler's calls run off the training thread
(samplers/background.py), each within a deadline.
"""

from __future__ import annotations

from typing import Any

from epochwatch.samplers.base import Sampler


def host(pid: int) -> Sampler:
    from epochwatch.samplers.host import HostSampler

    return HostSampler(pid)


def gpu(pid: int) -> Sampler:
    from epochwatch.samplers.background import BackgroundSampler
    from epochwatch.samplers.nvml import NvmlSampler

    return BackgroundSampler(NvmlSampler(pid))


def fingerprint(samplers: list[Sampler], guard: Any) -> dict[str, Any]:
    """The environment fingerprint with the samplers' inventories (the GPUs, the driver)."""
    from epochwatch.fingerprint import collect as collect_fingerprint

    limit = None
    try:
        from epochwatch.samplers.host import memory_limit_bytes

        limit = memory_limit_bytes()
    except ImportError:
        pass
    env = collect_fingerprint(limit)
    for sampler in samplers:
        inventory = getattr(sampler, "inventory", None)
        if callable(inventory):
            inv = guard.run(f"{sampler.name} sampler", inventory, None)
            if inv:
                env.update(inv)
    return env


def started_dir_watcher() -> Any:
    """The hook's directory watcher, its worker thread already running."""
    from epochwatch.samplers.dirwatch import DirWatcher

    watcher = DirWatcher()
    watcher.start()
    return watcher
