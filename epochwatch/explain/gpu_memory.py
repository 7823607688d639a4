"""Where torch's CUDA memory grew: the allocating Python stacks of what stayed allocated.

A GPU window (gpu_window.py) records torch's CUDA allocation history
(`torch.cuda.memory._record_memory_history`, integrations/torch_cuda_history.py) over a
few epochs and takes `torch.cuda.memory._snapshot()` at its end. The snapshot's
`device_traces` (one list per device, oldest first) holds every allocator action of the
window: `alloc` (with `addr`, `size` and the allocating stack in `frames`, innermost
first, each `{"filename", "line", "name"}`), `free_requested`/`free_completed` (the same
`addr`), segment actions and the like. What a step allocates and frees cancels; what
was allocated in the window and is still allocated at its end is what grew. It is charged
to the innermost frame of the user's own code in its stack (frames.is_user), else the
innermost frame, and named per site with its bytes and tensors per epoch. Pure: a
snapshot dict in, records out (tested by feeding one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from epochwatch.explain.frames import is_user, short_path

NAMED = 3  # sites named
MIB = 1 << 20
_FREES = ("free_requested", "free_completed")


def kept_allocations(snapshot: Mapping[str, Any]) -> list[tuple[int, int, list[Mapping[str, Any]]]]:
    """(device, bytes, frames) of each allocation in the traces that was never freed."""
    kept: list[tuple[int, int, list[Mapping[str, Any]]]] = []
    for device, trace in enumerate(snapshot.get("device_traces") or []):
        live: dict[int, tuple[int, list[Mapping[str, Any]]]] = {}
        for entry in trace or []:
            action, addr = entry.get("action"), entry.get("addr")
            if not isinstance(addr, int):
                continue
            if action == "alloc":
                live[addr] = (int(entry.get("size") or 0), list(entry.get("frames") or []))
            elif action in _FREES:
                live.pop(addr, None)
        kept.extend((device, size, frames) for size, frames in live.values())
    return kept


def _owner(frames: list[Mapping[str, Any]]) -> tuple[str, int, str, bool]:
    """(filename, line, function, user's code) of the frame an allocation is charged to."""
    for frame in frames:  # innermost first
        filename = str(frame.get("filename") or "")
        if filename and is_user(filename):
            return filename, int(frame.get("line") or 0), str(frame.get("name") or ""), True
    if frames:
        f = frames[0]
        return str(f.get("filename") or "?"), int(f.get("line") or 0), str(f.get("name") or ""), False
    return "?", 0, "", False


def grown_sites(snapshot: Mapping[str, Any], epochs: int) -> list[dict[str, Any]]:
    """The sites whose allocations stayed allocated through the window, most bytes first,
    per epoch of the window's `epochs`."""
    per: dict[tuple[int, str, int, str, bool], list[int]] = {}
    for device, size, frames in kept_allocations(snapshot):
        key = (device, *_owner(frames))
        row = per.setdefault(key, [0, 0])
        row[0] += size
        row[1] += 1
    n = max(1, epochs)
    rows: list[dict[str, Any]] = [
        {
            "site": f"{short_path(filename)}:{line}",
            "function": function,
            "device": f"GPU:{device}",
            "bytes_per_epoch": int(total / n),
            "count_per_epoch": round(count / n, 1),
            "user_code": user,
        }
        for (device, filename, line, function, user), (total, count) in per.items()
    ]
    rows.sort(key=lambda r: r["bytes_per_epoch"], reverse=True)
    return rows


def gpu_summary(where: list[dict[str, Any]], grown: int, allocated: int | None) -> str:
    """One sentence: where the CUDA memory that stayed allocated was allocated."""
    seen = f"torch's allocated CUDA memory grew {allocated / MIB:.1f} MiB an epoch; " if allocated else ""
    if not where:
        return (
            seen
            + "no allocation made in the window stayed allocated (the growth was before it, or freed since)"
        )
    parts = [
        f"{w['site']} {w['function']} (+{w['bytes_per_epoch'] / MIB:.1f} MiB, +{w['count_per_epoch']:g} tensors an epoch)"
        for w in where[:NAMED]
    ]
    return f"{seen}what stayed allocated ({grown / MIB:.1f} MiB an epoch) was allocated at " + "; ".join(
        parts
    )
