"""host_contention: other processes take the CPU this run needs.

From the daemon's samples (`sample.contention`): the host is busy (host_cpu_pct >=
BUSY_HOST_PCT) and other processes use at least OTHERS_PCT of a core (waiting.py's
thresholds for daemon samples), averaged per epoch, in each of the last RECENT epochs.
Without the daemon, what the epochs alone show (the process's CPU per wall second falling
for the same work while other tasks want the CPU more and more) is the slowdown's to say:
"the host got busier" (one problem, one finding; slowdown.py).
"""

from __future__ import annotations

from typing import Any

from epochwatch.analysis import frameworks
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import WARNING, Finding
from epochwatch.analysis.trend import median
from epochwatch.analysis.view import RunAtEpoch, window_epochs
from epochwatch.analysis.waiting import BUSY_HOST_PCT, OTHERS_PCT

KIND = "host_contention"
RECENT = 3
PERSISTENCE = 2
UNNAMED = "another user's process"  # the daemon names only the run's own user's processes
HINT = (
    "other processes compete for the CPU: find them (`epochwatch status`, top), move them or this "
    "job, pin with taskset/cgroups, or lower tf.config.threading.set_inter_op_parallelism_threads / "
    "set_intra_op_parallelism_threads and tf.data num_parallel_calls to the cores that are free"
)


def _sampled(view: RunAtEpoch) -> Finding | None:
    idx = list(view.series.indexes(view.end, RECENT, warm=True))
    if len(idx) < RECENT:
        return None
    others = [view.value("contention_cpu", i) for i in idx]
    host = [view.value("host_cpu_pct", i) for i in idx]
    if any(o != o or o < OTHERS_PCT for o in others):
        return None
    if any(h == h and h < BUSY_HOST_PCT for h in host):
        return None
    evidence: dict[str, Any] = {
        "others_cpu_pct": median(others),
        "host_cpu_pct": median([h for h in host if h == h]) if any(h == h for h in host) else None,
        "epochs": window_epochs(view, idx),
        "source": "daemon samples",
    }
    busiest = _busiest(view)
    if busiest:
        evidence["busiest"] = busiest
    title = f"other processes use {median(others):.0f}% CPU while the host is busy"
    if busiest:
        title += f" (busiest: {busiest[0]['name'] or UNNAMED})"
    hint = frameworks.hint(KIND, frameworks.framework(view.start), HINT)
    return Finding(KIND, WARNING, title, evidence, hint, "cpu", view.epoch_number(view.last))


def _busiest(view: RunAtEpoch) -> list[dict[str, Any]]:
    for sample in reversed(view.run.recent_samples):
        cont = sample.get("contention")
        if isinstance(cont, dict) and isinstance(cont.get("cpu"), list):
            return [
                {"name": e.get("name"), "pid": e.get("pid"), "cpu_pct": e.get("cpu_pct")}
                for e in cont["cpu"][:3]
                if isinstance(e, dict)
            ]
    return []


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.done(KIND, "cpu"):
        return []
    f = _sampled(view)
    return [f] if f is not None else []


DETECTOR = Detector(name=KIND, detect=detect, persistence=PERSISTENCE)
