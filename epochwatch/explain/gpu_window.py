"""When to record torch's CUDA allocation history, driven by epoch records.

torch's allocated CUDA memory (the epoch record's `torch_memory["GPU:i"].current_bytes`,
integrations/torch.py) that rose by RISE_BYTES or more in each of the last two epochs,
or a `gpu_memory_growth` finding, arms a window; it opens at the next epoch record
(history on, integrations/torch_cuda_history.py) and closes EPOCHS epoch records later
(snapshot, history off): what was allocated in it and stayed allocated is named by its
allocating Python stack (gpu_memory.py). One window at a time, WINDOWS a run; a run
that never initialised CUDA never opens one. The history recorder (`history()`, from the
hook) is asked for when a window is wanted.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from epochwatch.analysis.series import finite_number
from epochwatch.explain.gpu_memory import MIB, NAMED, gpu_summary, grown_sites

KIND = "gpu_memory_growth"
RISE_BYTES = 2 * MIB
EPOCHS = 2
WINDOWS = 1


class GpuWindows:
    def __init__(self, history: Callable[[], Any]) -> None:
        self._history_of = history
        self._history: Any = None
        self._allocated: list[int] = []  # per epoch record: all devices' allocated bytes
        self._armed = False
        self._opened = 0
        self._open_at: int | None = None  # the position of the epoch record that opened it

    def on_finding(self, kind: str) -> None:
        if kind == KIND:
            self._armed = True

    def on_epoch(self, epoch: int, rec: dict[str, Any]) -> dict[str, Any] | None:
        """An epoch record: the open window may close (its explain fields returned), an
        armed one opens."""
        allocated = _allocated(rec.get("torch_memory"))
        if allocated is None:
            return None
        self._allocated.append(allocated)
        last = self._allocated[-3:]
        if len(last) == 3 and all(b - a >= RISE_BYTES for a, b in itertools.pairwise(last)):
            self._armed = True
        out = None
        position = len(self._allocated) - 1
        if self._open_at is not None and position - self._open_at >= EPOCHS:
            out = self._close(epoch, position)
        if self._armed and self._open_at is None and self._opened < WINDOWS:
            self._armed = False
            self._history = self._history or self._history_of()
            if self._history is not None and self._history.start():
                self._opened += 1
                self._open_at = position
        return out

    def _close(self, epoch: int, position: int) -> dict[str, Any] | None:
        start, self._open_at = self._open_at or 0, None
        snapshot = self._history.stop()
        if not snapshot:
            return None
        epochs = position - start
        sites = grown_sites(snapshot, epochs)
        grown = sum(s["bytes_per_epoch"] for s in sites)
        rise = (self._allocated[position] - self._allocated[start]) / epochs
        where = sites[:NAMED]
        return {
            "explains": KIND,
            "method": "cuda_memory_history",
            "epoch": epoch,
            "epochs": [epoch - epochs + 1, epoch],
            "allocated_bytes_per_epoch": int(rise),
            "kept_bytes_per_epoch": grown,
            "where": where,
            "summary": gpu_summary(where, grown, int(rise) if rise > 0 else None),
        }

    def close(self) -> None:
        if self._open_at is not None:
            self._open_at = None
            self._history.stop()


def _allocated(memory: Any) -> int | None:
    """All devices' allocated bytes in an epoch record's `torch_memory`, or None."""
    if not isinstance(memory, dict):
        return None
    values = [finite_number(d.get("current_bytes")) for d in memory.values() if isinstance(d, dict)]
    known = [v for v in values if v is not None]
    return int(sum(known)) if known else None
