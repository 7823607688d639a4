"""Explain where: the line of code behind a slowdown or a leak, looked for in the training
process while it happens (docs/findings.md, "Explain").

`attach(recorder)` makes an Explainer (controller.py) listen to the run's records. It
opens bounded windows only when a slowdown or host memory growth is suspected: stack
sampling of the training thread (stacks.py, frames.py, added.py), the framework's
profiler (captures.py), tracemalloc (memory.py) and torch's CUDA allocation history
(gpu_window.py, gpu_memory.py); what they find is an `explain` record in the trace, which the report, the
console and `hook.findings()` attach to the finding it explains (analysis/explained.py).
Never in the daemon; EPOCHWATCH_EXPLAIN=0 keeps it off. Imports no framework.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from epochwatch import envvars


def attach(
    recorder: Any, profiler: Callable[[], Any] | None = None, cuda_history: Callable[[], Any] | None = None
) -> bool:
    """Listen to `recorder`'s records (and the daemon's findings sent back), unless
    EPOCHWATCH_EXPLAIN is 0; returns whether it listens. `profiler()` gives the framework's
    profiler (integrations/tf_profile.py, torch_profile.py) or None, asked when a capture is
    wanted; `cuda_history()` torch's CUDA allocation history (torch_cuda_history.py) or None.

    The Explainer is made at the first record that needs it, so `import epochwatch.hook`
    does not pay for importing it (dataclasses, tracemalloc's helpers)."""
    if not envvars.switched_on(envvars.EPOCHWATCH_EXPLAIN, recorder.environ):
        return False
    made: list[Any] = []

    def on_record(rec: dict[str, Any]) -> None:
        if not made and rec.get("type") in ("epoch", "finding", "finding_update", "fit_start"):
            from epochwatch.explain.controller import Explainer

            made.append(
                Explainer(
                    recorder.emit,
                    recorder.add_overhead,
                    profile_dir=lambda: str(Path(recorder.trace_dir) / f"{recorder.run_id}.profile"),
                    profiler=profiler,
                    cuda_history=cuda_history,
                )
            )
        if made:
            made[0].on_record(rec)

    def on_finish() -> None:
        if made:
            made[0].finish()

    recorder.add_listener(on_record, "explain")
    recorder.add_finding_listener(on_record, "explain")
    recorder.on_finish(on_finish)
    return True
