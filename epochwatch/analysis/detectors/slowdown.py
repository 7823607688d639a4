"""slowdown: epoch time (or step time) that keeps growing, with its likely causes.

Series: epoch `seconds`; when that does not grow, `step_seconds.median` (the training
steps can slow down while validation hides it, or the other way round). The decision
is trend.assess_growth with RULE; see docs/detectors.md for how RULE was tuned.
"""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.attribution import likely_causes
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import CRITICAL, INFO, WARNING, Finding
from epochwatch.analysis.leaks import growth_evidence
from epochwatch.analysis.trend import Growth, GrowthRule, assess_growth
from epochwatch.analysis.units import fmt_seconds
from epochwatch.analysis.view import RunAtEpoch, Window

KIND = "slowdown"
RULE = GrowthRule(
    window=60,
    min_points=10,
    alpha=0.001,
    min_rel_slope=0.002,
    min_rel_growth=0.05,
    newest_frac=0.4,
    step_ratio=0.8,
)
PERSISTENCE = 3
# Severity: critical once the time per epoch has doubled against the run's own
# baseline, warning from +10%, info below (a trend that is sure but still small).
CRITICAL_RATIO = 2.0
WARNING_RATIO = 1.1

_HINTS = {
    "dir_files": "a directory this run writes to keeps filling up, and something lists or scans it every "
    "epoch: keep at most K checkpoints (ModelCheckpoint(..., save_best_only=True) or "
    "tf.train.CheckpointManager(max_to_keep=K)) and avoid globbing the directory in callbacks",
    "dir_bytes": "a directory this run writes to keeps growing: rotate or prune what it writes "
    "(CheckpointManager(max_to_keep=K), TensorBoard logs per run) so saving and listing stay cheap",
    "retrace_new": "tf.function keeps retracing: see the retrace_storm finding; pass changing Python "
    "values as tensors / tf.Variable, or give the function an input_signature",
    "live_functions": "concrete functions pile up (retracing): see retrace_storm; pass changing Python "
    "values as tensors and avoid creating tf.functions inside the loop",
    "graph_build": "time goes into building graphs (retracing): see retrace_storm",
    "rss": "memory keeps growing along with the slowdown: see host_memory_growth (e.g. a callback "
    "or list that keeps every batch's outputs)",
    "swap": "the process is being swapped out: reduce memory use or give the job more memory",
    "sys_swap_used": "the host is swapping: reduce memory use of this or other jobs",
    "contention_cpu": "other processes take the CPU: move them, pin this job (taskset) or lower "
    "tf.config.threading inter/intra op threads to what is free",
    "cpu_share": "this process gets less CPU per wall second: other processes or I/O waits; check "
    "`epochwatch status` / top while it runs",
    "input_wait": "the steps wait longer for their input every epoch: the input pipeline slows down (data read "
    "from a slower or busier disk, a generator or PyDataset doing more work per batch, a tf.data cache or "
    "shuffle buffer that no longer fits); see input_bound for the fixes by input kind",
    "steps": "epochs run more steps: the dataset grows (a repeat() without steps_per_epoch, or data "
    "appended every epoch)",
    "val_seconds": "validation takes longer: check validation_steps and what the validation set does",
    "gpu_throttled": "the GPU clocks down: see gpu_throttling (cooling, power cap)",
    "tf_current": "GPU memory grows with the slowdown: see gpu_memory_growth",
}
_DEFAULT_HINT = (
    "compare a slow epoch with an early one in a profile (keras.callbacks.TensorBoard(profile_batch=(10, 20)) "
    "or tf.profiler); usual causes are Python-side state that grows every epoch (lists of outputs, "
    "metrics kept forever), a growing tf.data cache, or callbacks doing more work each epoch"
)


def _severity(g: Growth, baseline: float) -> str:
    ratio = g.now / baseline if baseline > 0 else 1.0
    if ratio >= CRITICAL_RATIO:
        return CRITICAL
    if ratio >= WARNING_RATIO:
        return WARNING
    return INFO


def _finding(view: RunAtEpoch, what: str, target: str | None, g: Growth, w: Window) -> Finding:
    head = view.head("seconds" if target is None else "step_median")[:3]
    baseline = sorted(head)[len(head) // 2] if head else g.baseline  # the run's first epochs
    evidence: dict[str, Any] = growth_evidence(view, g, w)
    evidence["run_baseline"] = baseline
    causes = likely_causes(view, w)
    evidence["likely_causes"] = causes
    title = (
        f"{what} grows {100 * g.rel_slope:.1f}% per epoch: {fmt_seconds(g.start)} -> {fmt_seconds(g.now)} "
        f"over epochs {evidence['epochs'][0]}-{evidence['epochs'][-1]}"
    )
    if causes:
        title += f"; moves with {causes[0]['series']}"
    hint = _HINTS.get(causes[0]["column"], _DEFAULT_HINT) if causes else _DEFAULT_HINT
    return Finding(
        kind=KIND,
        severity=_severity(g, baseline),
        title=title,
        evidence=evidence,
        hint=hint,
        target=target,
        epoch=view.epoch_number(view.last),
    )


def detect(view: RunAtEpoch) -> list[Finding]:
    if not view.done(KIND, None):
        w = view.window("seconds", size=RULE.window)
        g = assess_growth(w.values, RULE)
        if g is not None:
            return [_finding(view, "epoch time", None, g, w)]
    if not view.done(KIND, "step time") and not view.done(KIND, None):
        w = view.window("step_median", size=RULE.window)
        g = assess_growth(w.values, RULE)
        if g is not None:
            return [_finding(view, "step time", "step time", g, w)]
    return []


DETECTOR = Detector(name=KIND, detect=detect, persistence=PERSISTENCE)
