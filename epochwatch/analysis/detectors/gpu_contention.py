"""gpu_contention: other processes compute on a GPU this run uses, and the run slows.

Series (see series.py): per device, the other processes' summed SM utilisation
(`gpu_others_sm`) and the run's own (`gpu_self_sm`), from the daemon's samples within an
epoch (averaged) or else the hook's own `gpu` block; NVML gives them per process where the
GPU supports it. The
finding needs both halves: others take a real share of the device (at least
OTHERS_SM_PCT in each of the last RECENT epochs) *and* this run's epochs (or steps) take
at least SLOWER times as long as when the others were quiet. Others being busy on a GPU
while this run keeps its speed is sharing, not contention; a run that slows with nobody
else on its GPU is a slowdown with another cause.
"""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.attribution import uses_device
from epochwatch.analysis.detectors.base import Detector, each_key
from epochwatch.analysis.detectors.contention import UNNAMED
from epochwatch.analysis.findings import CRITICAL, WARNING, Finding
from epochwatch.analysis.trend import median
from epochwatch.analysis.view import RunAtEpoch, window_epochs

KIND = "gpu_contention"
RECENT = 3
OTHERS_SM_PCT = 10.0  # others' share of the device's SM time that counts as real use
QUIET_SM_PCT = 5.0  # epochs with less than this from others are the run's own speed
SLOWER = 1.1
CRITICAL_RATIO = 2.0
WINDOW = 60
PERSISTENCE = 2
HINT = (
    "another job computes on the same GPU and takes SM time from this run: move one of the two to a "
    "free GPU (CUDA_VISIBLE_DEVICES / the scheduler's GPU allocation), ask the owner named here, or "
    "keep GPUs to one job (nvidia-smi -c EXCLUSIVE_PROCESS, MIG partitions, MPS with limits)"
)


def _ratio(view: RunAtEpoch, name: str, device: str, recent: list[int]) -> tuple[float, float, float] | None:
    """(ratio, baseline, now) of `name` in the recent epochs against the quiet ones."""
    now_values = [view.value(name, i) for i in recent]
    now_values = [v for v in now_values if v == v]
    if len(now_values) < RECENT:
        return None
    quiet: list[float] = []
    for i in view.series.indexes(view.end, WINDOW):
        others = view.value("gpu_others_sm", i, device)
        v = view.value(name, i)
        if v == v and (others != others or others < QUIET_SM_PCT):
            quiet.append(v)
    base = quiet[-10:] if len(quiet) >= 3 else view.head(name)[:3]
    if not base:
        return None
    baseline, now = median(base), median(now_values)
    if baseline <= 0:
        return None
    return now / baseline, baseline, now


def _since(view: RunAtEpoch, device: str) -> int:
    i = view.last
    first = i
    while i >= view.series.offset:
        v = view.value("gpu_others_sm", i, device)
        if v == v and v < OTHERS_SM_PCT:
            break
        if v == v:
            first = i
        i -= 1
    return view.epoch_number(first)


def evaluate(view: RunAtEpoch, device: str) -> Finding | None:
    recent = list(view.series.indexes(view.end, RECENT))
    if len(recent) < RECENT or not uses_device(view, device, recent):
        return None
    others = [view.value("gpu_others_sm", i, device) for i in recent]
    if any(o != o or o < OTHERS_SM_PCT for o in others):
        return None
    best: tuple[float, float, float, str] | None = None
    for name, what in (("seconds", "epochs"), ("step_median", "steps")):
        got = _ratio(view, name, device, recent)
        if got is not None and (best is None or got[0] > best[0]):
            best = (*got, what)
    if best is None or best[0] < SLOWER:
        return None
    ratio, baseline, now, what = best
    processes = view.series.others_on_gpu(device, view.end)
    since = _since(view, device)
    evidence: dict[str, Any] = {
        "device": device,
        "others_sm_pct": round(median(others), 1),
        "since_epoch": since,
        "epochs": window_epochs(view, recent),
        "measure": "step time" if what == "steps" else "epoch time",
        "baseline_seconds": baseline,
        "recent_seconds": now,
        "slowdown_ratio": round(ratio, 3),
        "processes": processes,
        "source": "NVML per-process utilisation",
    }
    own = [view.value("gpu_self_sm", i, device) for i in recent]
    own = [v for v in own if v == v]
    if own:
        evidence["own_sm_pct"] = round(median(own), 1)
    title = (
        f"other processes use {median(others):.0f}% of GPU {device}'s compute since epoch {since + 1}, and this "
        f"run's {what} take {ratio:.2f}x as long as without them"
    )
    if processes:
        top = processes[0]
        who = f"{top.get('name', UNNAMED)} (pid {top.get('pid')}"
        who += f", user {top['user']})" if top.get("user") else ")"
        title += f"; busiest: {who}"
    severity = CRITICAL if ratio >= CRITICAL_RATIO else WARNING
    return Finding(KIND, severity, title, evidence, HINT, f"GPU:{device}", view.epoch_number(view.last))


def detect(view: RunAtEpoch) -> list[Finding]:
    return each_key(view, KIND, "gpu_others_sm", lambda device: f"GPU:{device}", evaluate)


DETECTOR = Detector(name=KIND, detect=detect, persistence=PERSISTENCE)
