"""The TF profiler's captures of the compiled step, for explain (issue 25, item 3).

When stack sampling finds that most of an epoch's added time is inside the compiled step,
Python frames cannot say which ops: TF's own profiler can. The Explainer
(epochwatch/explain/controller.py) takes a short baseline capture early (once, when the
baseline stack window found the run's time inside a compiled step) and a capture of a slow
epoch, into `<EPOCHWATCH_DIR>/<run_id>.profile/` (`baseline/` for the first), which
TensorBoard's profile plugin opens (`tensorboard --logdir <that dir>`). `op_seconds` reads
a capture's `*.xplane.pb` back with TF's own XSpace proto: each op's own time (its
children's taken out) per step. Here, because only integrations/ imports TensorFlow; set
on the Explainer by the hook once the script imported TF.

No capture in a process that is a worker of a TF cluster (MultiWorkerMirroredStrategy,
a parameter-server job): TF 2.x's profiler there crashed the worker it ran in (SIGSEGV or
"munmap_chunk(): invalid pointer", 7 of 30 two-worker fit jobs on a loaded host, none of
45 without captures), whether it was stopped from a timer or from the training thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections import Counter
from pathlib import Path

from epochwatch.integrations.own_time import own_times

# An op kernel's event: "<op name>:<op type>" (TF's executors name them so); framework
# events ("ExecutorState::Process", "EagerExecute") have no such form.
_OP = re.compile(r"^([^\s:#]+):([A-Za-z][A-Za-z0-9_]*)$")
# A call of a tf.function on the Python thread: a step (Keras' train function, a loop's).
_CALL = re.compile(r"^EagerLocalExecute: __inference_(.+?)_\d+$")
MAX_EVENTS = 2_000_000  # a capture larger than this is not read (its time, its memory)


class TFProfiler:
    """start/stop of `tf.profiler.experimental`, never raising; one capture at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = False

    def start(self, logdir: str) -> bool:
        import tensorflow as tf

        with self._lock:
            if self._running or in_cluster():
                return False
            try:
                tf.profiler.experimental.start(logdir)
            except Exception:  # another profiler session (the script's own) is running
                return False
            self._running = True
            return True

    def stop(self) -> None:
        import tensorflow as tf

        with self._lock:
            if not self._running:
                return
            self._running = False
            with contextlib.suppress(Exception):  # never into training
                tf.profiler.experimental.stop()

    def op_seconds(self, logdir: str) -> tuple[dict[str, float], int] | None:
        """({op: own seconds per step}, steps) from the newest capture under `logdir`, or
        None when there is none or it cannot be read. Never raises."""
        try:
            return _op_seconds(logdir)
        except Exception:
            return None


def in_cluster() -> bool:
    """Whether this process works in a TF cluster: its eager context holds a server def (a
    multi-worker strategy's collectives, a parameter-server job), or TF_CONFIG names more
    than one task. Never raises: an unreadable answer is a yes (no capture)."""
    try:
        from tensorflow.python.eager import context

        ctx = context.context()
        if getattr(ctx, "_server_def", None) or getattr(ctx, "_collective_ops_server_def", None):
            return True
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster") or {}
        return sum(len(tasks) for tasks in cluster.values()) > 1
    except Exception:
        return True


def _op_seconds(logdir: str) -> tuple[dict[str, float], int] | None:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(Path(logdir).glob("plugins/profile/*/*.xplane.pb"))
    if not files:
        return None
    space = xplane_pb2.XSpace()
    space.ParseFromString(files[-1].read_bytes())
    planes = [p for p in space.planes if p.name.startswith("/host:")]  # a GPU's name kernels
    if sum(len(line.events) for p in planes for line in p.lines) > MAX_EVENTS:
        return None
    calls: Counter[str] = Counter()
    spans: list[tuple[int, int]] = []  # the calls' (start, end), ps
    ops: list[tuple[int, int, int, str]] = []  # (line, start, duration, op)
    for plane in planes:
        # Each event name is matched once, not once per event: most of a capture's events
        # are the executor's and the thread pools' own (67,000 of 71,000 in a 2 MB capture
        # of the test's while loop, whose read took 0.16 s matching each event, 0.05 s now).
        op_names: dict[int, str] = {}
        call_names: dict[int, str] = {}
        for i, m in plane.event_metadata.items():
            if match := _OP.match(m.name):
                op_names[i] = _short(match.group(1), match.group(2))
            elif call := _CALL.match(m.name):
                call_names[i] = call.group(1)
        for n, line in enumerate(plane.lines):
            base = line.timestamp_ns * 1000
            for e in line.events:
                mid = e.metadata_id
                if mid in op_names:
                    ops.append((n, base + e.offset_ps, e.duration_ps, op_names[mid]))
                elif mid in call_names:
                    calls[call_names[mid]] += 1
                    spans.append((base + e.offset_ps, base + e.offset_ps + e.duration_ps))
    steps = max(calls.values(), default=0)
    own = _own(ops, sorted(spans))
    if steps == 0 or not own:
        return None
    return {op: ps * 1e-12 / steps for op, ps in own.items()}, steps


def _own(ops: list[tuple[int, int, int, str]], spans: list[tuple[int, int]]) -> Counter[str]:
    """Each op's own time (own_time.py), of the ops inside a call that completed in the
    capture: a step cut off by the capture's end would count its ops and not itself."""
    import bisect

    starts = [s for s, _e in spans]

    def completed(start: int, duration: int) -> bool:
        i = bisect.bisect_right(starts, start) - 1
        return i >= 0 and spans[i][1] >= start + duration

    return own_times([op for op in ops if completed(op[1], op[2])])


def _short(name: str, kind: str) -> str:
    """An op as a person reads it: its name below the function call that every Keras step
    op sits in ("StatefulPartitionedCall/"), and its type."""
    return f"{name.removeprefix('StatefulPartitionedCall/')} ({kind})"
