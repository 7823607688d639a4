"""`hook_bytes`: what the hook itself holds in the training process, without tracemalloc.

A trace whose process grows must be able to show that the hook is not what grows. Tracing
allocations (tracemalloc) would cost every allocation of the script; instead the hook adds
up the sizes of what it keeps that can grow with the run: the online analyzer's run (its
per-epoch columns and whole records, see analysis/run.Run.footprint_bytes) and the records
waiting for the analysis thread. Written into every `fit_end` (docs/trace-format.md).
"""

from __future__ import annotations

from typing import Any


def hook_bytes(recorder: Any) -> int:
    """The estimate; 0 for parts not started."""
    return int(recorder.detection.footprint_bytes())
