"""torch's CUDA allocation history for explain's GPU window (issue 25, item 3).

`torch.cuda.memory._record_memory_history` keeps every allocator action with the
allocating Python stack (about 2 us an allocation, torch's docs say), and
`torch.cuda.memory._snapshot()` returns them (`device_traces`) with the allocator's
segments; explain/gpu_memory.py reads which allocations of the window stayed allocated.
Here because only integrations/ imports torch; only where the script initialised CUDA
(never initialised here), and never where the script records the history itself (its
snapshot already holds traces: turning the recording off at the window's end would end
the script's).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

MAX_ENTRIES = 100_000  # allocator actions kept (torch keeps the newest): bounds the memory and the read


class CudaHistory:
    """start() -> bool, stop() -> the snapshot dict or None; never raising; one at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._on = False

    def start(self) -> bool:
        import torch

        with self._lock:
            if self._on:
                return False
            try:
                if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
                    return False
                if any(torch.cuda.memory._snapshot().get("device_traces") or []):
                    return False  # the script records the history itself
                record = torch.cuda.memory._record_memory_history
                try:
                    record(
                        "all", context="alloc", stacks="python", max_entries=MAX_ENTRIES, clear_history=True
                    )
                except TypeError:  # a torch before clear_history: the traces were empty anyway
                    record("all", context="alloc", stacks="python", max_entries=MAX_ENTRIES)
            except Exception:
                return False
            self._on = True
            return True

    def stop(self) -> dict[str, Any] | None:
        import torch

        with self._lock:
            if not self._on:
                return None
            self._on = False
            snapshot: dict[str, Any] | None = None
            with contextlib.suppress(Exception):
                snapshot = dict(torch.cuda.memory._snapshot())
            with contextlib.suppress(Exception):  # never into training
                torch.cuda.memory._record_memory_history(None)
            return snapshot
