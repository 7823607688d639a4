"""torch.profiler's captures of a PyTorch step, for explain (issue 25, item 3).

The torch twin of tf_profile.py: when stack sampling finds an epoch's added time inside
the step (for eager PyTorch: torch's own op-running frames, explain/frames.py), the
Explainer's captures (explain/captures.py) start this profiler at an epoch record, end it
after a few steps' time, and read back each op's own seconds per step to name the ops
whose time grew. Here, because only integrations/ imports torch.

torch.profiler's CPU profiling is thread-local: it records the ops of the thread that
called `start()`, and a `stop()` from any other thread does nothing but print a warning
while the session keeps running on the training thread. So `start` must be called on the
training thread (Captures does, at an epoch record), and a `stop()` from elsewhere (the
capture's timer) only asks: the training thread stops it at the end of its next optimizer
step (`after_step`, a global optimizer post-step hook registered once when torch is
imported: registering or removing one while torch iterates its hooks, as it does when an
epoch record is written from epochwatch's own post-step hook, raises "OrderedDict mutated
during iteration" into the step), so a capture holds whole steps; otherwise the next
epoch record's stop, on the training thread too, ends it.

Steps: torch's optimizers wrap `step` in `record_function("Optimizer.step#<Class>.step")`,
so the capture counts its own steps. An op's own time is `self_cpu_time_total`, and with
CUDA profiled (only where the script initialised CUDA: it is never initialised here) the
time of the kernels it launched, `self_device_time_total`, as a second entry
("aten::mm (GPU)"). The capture is kept for a person: `<logdir>/<host>_<pid>.pt.trace.json`
(Perfetto, chrome://tracing, TensorBoard's torch-tb-profiler).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from epochwatch.integrations.own_time import own_times

STEP = "Optimizer.step#"  # torch's record_function around every optimizer's step
MAX_EVENTS = 200_000  # a capture with more events is neither read nor exported (its time, its memory)

_stopping: TorchProfiler | None = None  # a capture whose stop was asked from another thread


def after_step(_optimizer: Any = None, _args: Any = None, _kwargs: Any = None) -> None:
    """torch's global optimizer post-step hook: carries out a stop that another thread
    asked for, on the thread that started the capture. Between captures: one global read."""
    profiler = _stopping
    if profiler is not None:
        with contextlib.suppress(Exception):  # never into training
            profiler.at_step_end()


def install(_recorder: Any = None) -> None:
    """Register `after_step` once, when the script imported torch (integrations/__init__.py)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    register_optimizer_step_post_hook(after_step)


class TorchProfiler:
    """start/stop of a torch.profiler session (`_session`), never raising; one at a time.
    Same interface as tf_profile.TFProfiler: start(logdir) -> bool, stop(), op_seconds(logdir)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prof: Any = None  # the running capture
        self._thread: int | None = None  # the thread that started it
        self._logdir = ""
        self._stopped: dict[str, Any] = {}  # logdir -> a stopped capture, not read yet

    def start(self, logdir: str) -> bool:
        """Start a capture on this (the training) thread; False when one runs already (ours,
        or the script's own torch.profiler session) or torch refuses."""
        with self._lock:
            if self._prof is not None or script_profiling():
                return False
            try:
                prof = _session()
                prof.__enter__()
            except Exception:
                return False
            self._prof, self._thread, self._logdir = prof, threading.get_ident(), logdir
            self._stopped.pop(logdir, None)
            return True

    def stop(self) -> None:
        """Stop now on the thread that started the capture; from another, ask that thread
        to stop at its next optimizer step's end (see the module docstring)."""
        global _stopping
        if self._prof is None:
            return
        if threading.get_ident() == self._thread:
            self._stop_now()
        else:
            _stopping = self

    def at_step_end(self) -> None:
        if threading.get_ident() == self._thread:
            self._stop_now()

    def _stop_now(self) -> None:
        global _stopping
        with self._lock:
            prof, self._prof = self._prof, None
            if _stopping is self:
                _stopping = None
            if prof is None:
                return
            try:
                prof.__exit__(None, None, None)
            except Exception:
                return
            self._stopped[self._logdir] = prof

    @property
    def running(self) -> bool:
        return self._prof is not None

    @staticmethod
    def how_to_open(logdir: str) -> str:
        return (
            f"its *.pt.trace.json in ui.perfetto.dev, or tensorboard --logdir {logdir} with torch-tb-profiler"
        )

    def op_seconds(self, logdir: str) -> tuple[dict[str, float], int] | None:
        """({op: own seconds per step}, steps) of the capture stopped into `logdir`, which
        is also written there as a Chrome trace; None when there is none, it held no
        whole optimizer step, or it is too large to read. Never raises."""
        with self._lock:
            prof = self._stopped.pop(logdir, None)
        if prof is None:
            return None
        try:
            events = prof.kineto_results.events()
            if len(events) > MAX_EVENTS:
                return None
            export(prof, logdir)
            # With the device's kernels: torch's own reading.
            if getattr(prof, "use_device", None) or getattr(prof, "use_cuda", False):
                return op_seconds(prof.key_averages())
            return cpu_op_seconds(events)
        except Exception:
            return None


def _session() -> Any:
    """A kineto session of `torch.autograd.profiler.profile`, the one `torch.profiler.profile`
    wraps: the wrapper's start asks `hasattr(torch, "_inductor")`, which imports
    torch._inductor and torch._dynamo (2 s here) where the script has not (a loop's first
    optimizer step does). CUDA's kernels too where the script initialised CUDA."""
    import torch
    from torch.autograd import profiler

    cuda = False
    with contextlib.suppress(Exception):
        cuda = bool(torch.cuda.is_available() and torch.cuda.is_initialized())
    try:
        return profiler.profile(use_device="cuda" if cuda else None, use_kineto=True)
    except TypeError:  # a torch before use_device
        return profiler.profile(use_cuda=cuda, use_kineto=True)


def script_profiling() -> bool:
    """Whether a torch.profiler (or autograd profiler) session runs already: the process's
    flag (any thread's session) or this thread's."""
    try:
        import torch

        return bool(torch.autograd.profiler._is_profiler_enabled or torch._C._autograd._profiler_enabled())
    except Exception:
        return True  # an unreadable answer is a yes: no capture


def export(prof: Any, logdir: str) -> str:
    """The capture as `<logdir>/<host>_<pid>.<ms>.pt.trace.json` (the name torch's own
    tensorboard_trace_handler gives, which torch-tb-profiler lists by worker)."""
    path = Path(logdir)
    path.mkdir(parents=True, exist_ok=True)
    name = path / f"{socket.gethostname()}_{os.getpid()}.{int(time.time() * 1000)}.pt.trace.json"
    prof.export_chrome_trace(str(name))
    return str(name)


def _annotation(row: Any) -> bool:
    """A `record_function` range (torch's "Optimizer.step#SGD.step", "enumerate(DataLoader)#...",
    a script's own), not an op: its own time is the Python between the ops it holds, which
    also holds any wait for the interpreter (one 0.25 ms optimizer step read 183 ms on this
    loaded host while the hook's analysis ran beside it)."""
    return bool(getattr(row, "is_user_annotation", False)) or "#" in str(row.key)


def cpu_op_seconds(events: Any) -> tuple[dict[str, float], int] | None:
    """`op_seconds` of a CPU-only capture from its raw kineto events (each with `name()`,
    `start_ns()`, `duration_ns()`, `start_thread_id()`, `device_type()`, `is_async()`,
    `is_user_annotation()`): the same own times as `key_averages()` (equal to the
    microsecond on the test loop) at a seventh of the cost (11 ms against 73 ms for 1,266
    events), as torch's parse builds an object per event that only the sums need."""
    steps: dict[str, int] = {}
    rows: list[tuple[int, int, int, str]] = []
    annotations: set[str] = set()
    for e in events:
        name = str(e.name())
        if name.startswith(STEP):
            steps[name] = steps.get(name, 0) + 1
        if "CPU" not in str(e.device_type()) or e.is_async():
            continue
        if e.is_user_annotation() or "#" in name:
            annotations.add(name)
        rows.append((int(e.start_thread_id()), int(e.start_ns()), int(e.duration_ns()), name))
    n = max(steps.values(), default=0)
    if n == 0:
        return None
    own = own_times(rows)
    return {f"{op} (CPU)": ns * 1e-9 / n for op, ns in own.items() if ns > 0 and op not in annotations}, n


def op_seconds(averages: Any) -> tuple[dict[str, float], int] | None:
    """({op: own seconds per step}, steps) from `key_averages()` rows (each with `key`,
    `count`, `self_cpu_time_total` and `self_device_time_total` in microseconds, and
    `device_type`): an op's CPU time as "<op> (CPU)", the device time of the kernels it
    launched as "<op> (GPU)" (the kernels' own rows would count that time twice), of ops
    only (`record_function` ranges are not: `_annotation`). Steps are the most
    `Optimizer.step#` calls of one optimizer; None without one."""
    steps = 0
    own: dict[str, float] = {}
    for row in averages:
        key = str(row.key)
        if key.startswith(STEP):
            steps = max(steps, int(row.count))
        if _annotation(row) or "CPU" not in str(getattr(row, "device_type", "CPU")):
            continue
        own[f"{key} (CPU)"] = own.get(f"{key} (CPU)", 0.0) + float(row.self_cpu_time_total)
        device = float(getattr(row, "self_device_time_total", 0.0) or 0.0)
        if device > 0:
            own[f"{key} (GPU)"] = own.get(f"{key} (GPU)", 0.0) + device
    if steps == 0:
        return None
    return {op: us * 1e-6 / steps for op, us in own.items() if us > 0}, steps
