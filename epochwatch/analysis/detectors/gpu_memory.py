"""gpu_memory_growth: memory on a GPU keeps rising, per device.

Series: the framework allocator's `current_bytes` where the trace has it (`tf_memory`,
`torch_memory` or `jax_memory["GPU:i"]`: what the model really holds; NVML cannot see inside
TF's or JAX's pre-allocated pool, nor tell PyTorch's cache from live tensors), else NVML's
`process_memory_bytes` for device i. Lower envelope as for host memory (allocator
chunks), the same decision rule. The limit is the device's `memory_total_bytes`.
"""

from __future__ import annotations

from epochwatch.analysis import frameworks, leaks
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.detectors.host_memory import BLATANT, ENVELOPE, PERSISTENCE, RULE
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.growth import judge
from epochwatch.analysis.units import fmt_bytes
from epochwatch.analysis.view import RunAtEpoch

KIND = "gpu_memory_growth"
HINT = (
    "tensors stay alive across epochs: look for Python lists of GPU tensors (outputs, losses "
    "kept without .numpy()/float()), tf.Variables or models created every epoch, and "
    "tf.function retracing (each trace keeps its own constants); "
    "tf.config.experimental.get_memory_info('GPU:0') per epoch confirms the growth"
)


def _devices(view: RunAtEpoch) -> list[tuple[str, str, str]]:
    """(target, column, key) per device: TF's allocator first, NVML where TF says nothing."""
    tf_keys = view.series.keys("tf_current")
    nvml = [(f"GPU:{key}", "gpu_proc", key) for key in view.series.keys("gpu_proc")]
    return [(key, "tf_current", key) for key in tf_keys] + [d for d in nvml if d[0] not in tf_keys]


def current(view: RunAtEpoch, finding: Finding) -> float:
    for target, column, key in _devices(view):
        if target == finding.target:
            return view.latest(column, key=key)
    return float("nan")


def detect(view: RunAtEpoch) -> list[Finding]:
    found: list[Finding] = []
    for target, column, key in _devices(view):
        if view.done(KIND, target):
            continue
        verdict = judge(view, column, RULE, key=key, envelope=ENVELOPE, blatant=BLATANT)
        if verdict is None:
            continue
        g, w = verdict.growth, verdict.window
        index = target.split(":", 1)[1] if ":" in target else key
        host_backed = target.startswith("CPU")
        limit = view.latest("gpu_total", key=index)
        peak_col = "tf_peak" if column == "tf_current" else "gpu_proc"
        level = view.latest(peak_col, key=key)
        if level != level:
            level = view.latest(column, key=key)
        base = (view.head(column, settling=True)[:1] or [g.start])[0]
        limit_name = f"device's memory{' (' + view.series.gpu_names.get(index, '') + ')' if view.series.gpu_names.get(index) else ''}"
        if host_backed:
            # JAX's CPU device: its arrays are the process's memory, so the host's limit and
            # the process's size say what the growth comes to (host_memory_growth leaves it here).
            level, base = view.latest("rss"), (view.head("rss_min", settling=True)[:1] or [base])[0]
            limit, limit_name = leaks.host_limit(view)
        now = view.latest(column, key=key)
        evidence = leaks.growth_evidence(view, g, w, now)
        proj = leaks.projection(view, level, limit, g.slope, evidence["slope_per_epoch"])
        evidence.update(proj)
        if column == "tf_current":
            source = view.series.allocator_sources.get(key, "TF allocator")
            evidence["source"] = f"{source} current_bytes" if "allocator" in source else source
        else:
            evidence["source"] = "NVML process memory"
        evidence.update(level=level, rule=verdict.rule, current=now, base=g.start)
        what = "GPU memory" if not target.startswith("CPU") else "Device memory (JAX, host-backed)"
        slope, per = view.said(g.slope, evidence["slope_per_epoch"])
        title = f"{what} on {target} grows {fmt_bytes(slope)} {per}: {fmt_bytes(evidence['start'])} -> {fmt_bytes(now)}"
        tail = leaks.consequence(proj, limit_name, view.noun)
        if tail:
            title += f"; {tail}"
            evidence["consequence"] = tail
        severity = leaks.severity(proj, base)
        hint = frameworks.hint(KIND, frameworks.framework(view.start), HINT)
        epoch = view.epoch_number(view.last)
        found.append(Finding(KIND, severity, title, evidence, hint, target, epoch, hold=verdict.hold))
    return found


DETECTOR = Detector(name=KIND, detect=detect, persistence=PERSISTENCE, current=current, intervals=True)
