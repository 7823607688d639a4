"""Explain where: the line of code behind a slowdown or a leak, looked for in the training
process while it happens (docs/findings.md, "Explain").

`attach(recorder)` makes an Explainer (controller.py) listen to the run's records. It
opens bounded windows only when a slowdown or host memory growth is suspected: stack
sampling of the training thread (stacks.py, frames.py, added.py) and tracemalloc
(memory.py); what they find is an `explain` record in the trace, which the report, the
console and `hook.findings()` attach to the finding it explains (analysis/explained.py).
Never in the daemon; EPOCHWATCH_EXPLAIN=0 keeps it off. Imports no framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from epochwatch import environment
from epochwatch.explain.controller import Explainer


def attach(recorder: Any) -> Explainer | None:
    """Listen to `recorder`'s records (and the daemon's findings sent back), unless
    EPOCHWATCH_EXPLAIN is 0; returns the Explainer, or None when switched off."""
    if not environment.switched_on(environment.EPOCHWATCH_EXPLAIN, recorder.environ):
        return None
    explainer = Explainer(
        recorder.emit,
        recorder.add_overhead,
        profile_dir=lambda: str(Path(recorder.trace_dir) / f"{recorder.run_id}.profile"),
    )
    recorder.add_listener(explainer.on_record, "explain")
    recorder.add_finding_listener(explainer.on_record, "explain")
    recorder.on_finish(explainer.finish)
    return explainer
