"""Time spent in steps that talk to other workers: the split between own work and waiting.

In a synchronous job (MultiWorkerMirroredStrategy, Horovod's TF ops) every step's
all-reduce sits inside a `tf.function`; a worker that arrives first at the all-reduce waits
there for the slowest one. TensorFlow exposes no cheap per-op clock for that wait, but
the host sees the call of a function whose graph holds a collective op return only when
the collective has finished. So, per epoch:

- `collective.seconds`: wall time inside calls of such functions (the worker's part of
  the step plus its wait for the others), timed around `ConcreteFunction._call_flat`;
- the rest of the epoch (`seconds - collective.seconds`) is the worker's own time: input
  prepared in Python, callbacks, logging, anything between steps.

Across the job's workers (offline, analysis/jobs.py) the worker that waits least in the
collective is the one the others wait for. Cost: a weak-dictionary lookup per
`tf.function` call, two clock reads per collective call, and one scan of each new
concrete function's graph for collective ops. On GPUs the call returns once its kernels
are queued, so the wait may surface at the next synchronisation instead (docs/findings.md).

The strategy and its replica count come from `Strategy.run`, seen when a step is traced.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from epochwatch.guard import Guard

COLLECTIVE_OPS = frozenset(
    {
        "CollectiveReduce",
        "CollectiveReduceV2",
        "CollectiveReduceV3",
        "CollectiveGather",
        "CollectiveGatherV2",
        "CollectiveBcastSend",
        "CollectiveBcastRecv",
        "CollectiveBcastSendV2",
        "CollectiveBcastRecvV2",
        "CollectiveAllToAllV2",
        "CollectiveAllToAllV3",
        "CollectiveReduceScatterV2",
        "NcclAllReduce",
        "NcclReduce",
        "NcclBroadcast",
        "HorovodAllreduce",
        "HorovodGroupedAllreduce",
        "HorovodAllgather",
        "HorovodBroadcast",
        "HorovodAlltoall",
        "HorovodReducescatter",
    }
)
MAX_SCAN_OPS = 200_000  # ops looked at per concrete function, nested functions included


def graph_has_collectives(graph: Any) -> bool:
    """Whether a FuncGraph (or a function in its library) holds a collective op."""
    functions = list((getattr(graph, "_functions", None) or {}).values())
    definitions = (
        getattr(fn, "cached_definition", None) or getattr(fn, "definition", None) for fn in functions
    )
    kinds = itertools.chain(
        (op.type for op in graph.get_operations()),
        (node.op for definition in definitions for node in getattr(definition, "node_def", ())),
    )
    for seen, kind in enumerate(kinds, 1):
        if kind in COLLECTIVE_OPS:
            return True
        if seen >= MAX_SCAN_OPS:
            return False
    return False


class CollectiveClock:
    """Sums the wall time of collective-bearing function calls between epoch ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds = 0.0
        self.calls = 0
        self.strategy: str | None = None
        self.replicas: int | None = None

    def add(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds
            self.calls += 1

    def saw_strategy(self, strategy: Any) -> None:
        self.strategy = type(strategy).__name__
        replicas = getattr(strategy, "num_replicas_in_sync", None)
        if isinstance(replicas, int):
            self.replicas = replicas

    def drain(self) -> dict[str, Any] | None:
        """The epoch's `collective` block; None when this epoch made no collective call."""
        with self._lock:
            seconds, calls = self.seconds, self.calls
            self.seconds, self.calls = 0.0, 0
        if not calls:
            return None
        block: dict[str, Any] = {"seconds": round(seconds, 6), "calls": calls}
        if self.strategy is not None:
            block["strategy"] = self.strategy
        if self.replicas is not None:
            block["replicas"] = self.replicas
        return block


_KIND = "_epochwatch_collective"  # on a ConcreteFunction: whether its graph holds a collective


def install_call_timing(clock: CollectiveClock, guard: Guard) -> None:
    """Wrap ConcreteFunction._call_flat; the wrapper never changes what TF returns or raises."""
    from tensorflow.python.eager import context
    from tensorflow.python.eager.polymorphic_function import concrete_function as cf

    original = cf.ConcreteFunction._call_flat
    if getattr(original, "__epochwatch__", False):
        return
    eager = context.executing_eagerly

    def classify(function: Any) -> bool:
        """Whether the function's graph holds a collective, kept on the function (a dict
        keyed by it would allocate a weak reference at every call: every step of a fit)."""
        found = bool(guard.run("collective timing", lambda: graph_has_collectives(function.graph), False))
        try:
            setattr(function, _KIND, found)
        except Exception:  # takes no attribute (TF's all do): not timed, judged at each call
            return False
        return found

    def _call_flat(self: Any, tensor_inputs: Any, captured_inputs: Any) -> Any:
        collective = getattr(self, _KIND, None)
        if collective is None and eager():
            collective = classify(self)
        if not (collective and eager()):
            return original(self, tensor_inputs, captured_inputs)
        start = time.perf_counter()
        try:
            return original(self, tensor_inputs, captured_inputs)
        finally:
            clock.add(time.perf_counter() - start)

    _call_flat.__epochwatch__ = True  # type: ignore[attr-defined]
    _call_flat.__wrapped__ = original  # type: ignore[attr-defined]
    cf.ConcreteFunction._call_flat = _call_flat


def install_strategy_watch(clock: CollectiveClock) -> None:
    """Note the strategy (class, replicas in sync) whenever `Strategy.run` is called (at trace time
    inside a tf.function, every step in eager code: one attribute read)."""
    from tensorflow.python.distribute import distribute_lib

    original = distribute_lib.StrategyBase.run
    if getattr(original, "__epochwatch__", False):
        return

    def run(self: Any, fn: Any, args: Any = (), kwargs: Any = None, options: Any = None) -> Any:
        try:
            if clock.strategy != type(self).__name__:
                clock.saw_strategy(self)
        except Exception:
            pass
        return original(self, fn, args=args, kwargs=kwargs, options=options)

    run.__epochwatch__ = True  # type: ignore[attr-defined]
    run.__wrapped__ = original  # type: ignore[attr-defined]
    distribute_lib.StrategyBase.run = run


def install(recorder: Any) -> None:
    """Wire collective timing into the recorder: a `collective` block in every epoch that had one."""
    clock = CollectiveClock()
    install_call_timing(clock, recorder.guard)
    recorder.guard.run("collective timing", lambda: install_strategy_watch(clock), None)
    recorder.add_epoch_source("collective", clock.drain)
