"""TensorFlow internals: tf.function retraces and what caused them, the allocator, build info.

Retraces are caught at `tracing_compilation._create_concrete_function`, which every
`tf.function` (Keras' own train step included) calls exactly once per new concrete
function, with the new function's FunctionType in hand. Comparing it with the same
function's previous FunctionType names the argument that changed, which is the
whole fix for the user ("`lr` is a Python float that changes every epoch").
Everything here costs only at trace time, never per step.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from epochwatch.analysis.functions import judged
from epochwatch.guard import Guard

_MAX_DESCRIBE = 80
_MAX_CAUSES = 5
_MAX_FUNCTIONS = 200


@dataclass
class _FunctionTally:
    total: int = 0
    new: int = 0
    causes: list[dict[str, str]] = field(default_factory=list)
    xla: bool = False


class RetraceLedger:
    """Counts new traces per function between epoch ends; filled from TF's tracing thread(s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._functions: dict[str, _FunctionTally] = {}
        self._last_type: dict[str, Any] = {}
        self._build_seconds = 0.0
        self._live: weakref.WeakSet[Any] = weakref.WeakSet()
        self._since = [0, 0.0]  # judged new traces and build seconds since the last interval

    def traced(
        self, name: str, function_type: Any, seconds: float, concrete: Any, outermost: bool, xla: bool = False
    ) -> None:
        causes: list[dict[str, str]] = []  # tf.data's own functions: traced anew for each
        if judged(name):  # iterator (a fit's three), never judged, their causes never read
            causes = explain_retrace(self._last_type.get(name), function_type)
            self._last_type[name] = function_type
        self.count(name, causes, seconds if outermost else 0.0, concrete, xla)

    def count(
        self, name: str, causes: list[dict[str, str]], seconds: float, live: Any = None, xla: bool = False
    ) -> None:
        """One new trace (or compilation) of `name`, with its causes: what every framework's
        integration reports (tf.function traces, JAX jit cache misses, torch.compile recompiles)."""
        with self._lock:
            tally = self._functions.get(name)
            if tally is None:
                if len(self._functions) >= _MAX_FUNCTIONS:
                    name = "<other>"
                tally = self._functions.setdefault(name, _FunctionTally())
            tally.total += 1
            tally.new += 1
            tally.xla = tally.xla or xla
            for cause in causes:
                if len(tally.causes) < _MAX_CAUSES and cause not in tally.causes:
                    tally.causes.append(cause)
            self._build_seconds += seconds
            if judged(name):
                self._since[0] += 1
                self._since[1] += seconds
            if live is not None:
                with contextlib.suppress(TypeError):
                    self._live.add(live)

    def count_build(self, seconds: float) -> None:
        """Time spent compiling what was traced (JAX reports it apart from the trace)."""
        with self._lock:
            self._build_seconds += seconds

    def interval(self) -> dict[str, Any]:
        """The `retraces` block of an `interval` record: the judged functions' new traces
        and their build time since the last interval (or epoch end), so that growth inside
        a long first epoch can be told to be the retraces' (analysis/detectors/retraces.py)."""
        with self._lock:
            (new, seconds), self._since = self._since, [0, 0.0]
        return {"new": new, "graph_build_seconds": round(seconds, 6)}

    def drain(self) -> dict[str, Any] | None:
        """The `retraces` block for the epoch that just ended; resets the per-epoch counts."""
        with self._lock:
            functions = {
                name: {
                    "new": t.new,
                    "total": t.total,
                    "causes": list(t.causes),
                    **({"xla": True} if t.xla else {}),
                }
                for name, t in self._functions.items()
                if t.new
            }
            new = sum(t.new for t in self._functions.values())
            block: dict[str, Any] = {
                "new": new,
                "graph_build_seconds": round(self._build_seconds, 6),
                "live_concrete_functions": len(self._live),
            }
            if functions:
                block["functions"] = functions
            for t in self._functions.values():
                t.new = 0
                t.causes = []
            self._build_seconds = 0.0
            self._since = [0, 0.0]
        return block


def describe(trace_type: Any) -> str:
    """A short human description of one argument's trace type."""
    value = getattr(trace_type, "value", _MISSING)
    if value is not _MISSING and type(trace_type).__name__ == "Literal":
        text = f"{type(value).__name__} {value!r}"
    elif hasattr(trace_type, "shape") and hasattr(trace_type, "dtype"):
        dtype = getattr(trace_type.dtype, "name", trace_type.dtype)
        shape = getattr(trace_type.shape, "as_list", lambda: trace_type.shape)()
        text = f"{type(trace_type).__name__}(shape={shape}, dtype={dtype})"
    else:
        text = repr(trace_type)
    return text if len(text) <= _MAX_DESCRIBE else text[: _MAX_DESCRIBE - 1] + "…"


_MISSING = object()


def cause(arg: str, change: str, was: str, now: str) -> dict[str, str]:
    """One cause of a new trace, as every framework's integration reports it."""
    return {"arg": arg, "change": change, "was": was, "now": now}


def _components(trace_type: Any) -> Any:
    """A Tuple's components, or a List's (TF keeps them in a Tuple, `components_tuple`): a
    value that changed inside a list argument read as the whole list's `type`."""
    inner = getattr(trace_type, "components_tuple", trace_type)
    return getattr(inner, "components", None)


def _diff(path: str, was: Any, now: Any, out: list[dict[str, str]]) -> None:
    if len(out) >= _MAX_CAUSES or was == now:
        return
    change = "type"
    if type(was) is type(now) and type(now).__name__ == "Literal":
        change = "value"
    elif type(was) is type(now) and hasattr(now, "shape") and hasattr(now, "dtype"):
        change = "dtype" if was.dtype != now.dtype else "shape"
    elif type(was) is type(now):
        was_map, now_map = getattr(was, "mapping", None), getattr(now, "mapping", None)
        was_c, now_c = _components(was), _components(now)
        if isinstance(was_map, dict) and isinstance(now_map, dict):
            if set(was_map) == set(now_map):
                for key in now_map:
                    _diff(f"{path}[{key!r}]", was_map[key], now_map[key], out)
                return
            change = "structure"
        elif isinstance(was_c, tuple | list) and isinstance(now_c, tuple | list):
            if len(was_c) == len(now_c):
                for i, (a, b) in enumerate(zip(was_c, now_c, strict=True)):
                    _diff(f"{path}[{i}]", a, b, out)
                return
            change = "structure"
    out.append(cause(path, change, describe(was), describe(now)))


def explain_retrace(previous: Any, current: Any) -> list[dict[str, str]]:
    """Which arguments differ between two FunctionTypes of the same function, and how."""
    if previous is None:
        return [cause("*", "new", "", "first trace")]
    out: list[dict[str, str]] = []
    try:
        prev_params = dict(previous.parameters)
        cur_params = dict(current.parameters)
    except Exception:
        return out
    for name, param in cur_params.items():
        if name not in prev_params:
            out.append(cause(name, "structure", "absent", describe(param.type_constraint)))
            continue
        _diff(name, prev_params[name].type_constraint, param.type_constraint, out)
    for name in prev_params:
        if name not in cur_params and len(out) < _MAX_CAUSES:
            out.append(cause(name, "structure", "present", "absent"))
    if not out and getattr(previous, "captures", None) != getattr(current, "captures", None):
        out.append(cause("<captures>", "type", "captured values", "changed"))
    return out


XLA_COMPILE = "_XlaMustCompile"  # TF's attribute of a jit_compile=True function's graph


def install_retrace_tracking(ledger: RetraceLedger, guard: Guard) -> None:
    """Wrap TF's concrete-function factory; the wrapper never changes what TF returns or raises."""
    from tensorflow.python.eager.polymorphic_function import tracing_compilation as tc

    original = tc._create_concrete_function
    if getattr(original, "__epochwatch__", False):
        return
    depth = threading.local()

    def _create_concrete_function(
        function_type: Any, type_context: Any, func_graph: Any, tracing_options: Any
    ) -> Any:
        level = getattr(depth, "n", 0)
        depth.n = level + 1
        start = time.perf_counter()
        try:
            concrete = original(function_type, type_context, func_graph, tracing_options)
        finally:
            depth.n = level
        seconds = time.perf_counter() - start
        name = str(getattr(tracing_options, "name", None) or "<anonymous>")
        attributes = getattr(tracing_options, "attributes", None)
        xla = isinstance(attributes, dict) and attributes.get(XLA_COMPILE) is True
        guard.run(
            "retrace tracking",
            lambda: ledger.traced(name, function_type, seconds, concrete, outermost=level == 0, xla=xla),
            None,
        )
        return concrete

    _create_concrete_function.__epochwatch__ = True  # type: ignore[attr-defined]
    _create_concrete_function.__wrapped__ = original  # type: ignore[attr-defined]
    tc._create_concrete_function = _create_concrete_function


def allocator_source() -> Callable[[], dict[str, Any] | None]:
    """A function returning TF's allocator current/peak bytes per logical GPU, or None without GPUs."""
    import tensorflow as tf

    devices: list[str] | None = None

    def sample() -> dict[str, Any] | None:
        nonlocal devices
        if devices is None:
            devices = [d.name.replace("/device:", "") for d in tf.config.list_logical_devices("GPU")]
        if not devices:
            return None
        out: dict[str, Any] = {}
        for name in devices:
            info = tf.config.experimental.get_memory_info(name)
            out[name] = {"current_bytes": int(info["current"]), "peak_bytes": int(info["peak"])}
        return out

    return sample


def build_info() -> dict[str, Any]:
    """TF's CUDA/cuDNN build facts, JSON-safe."""
    import tensorflow as tf

    info = dict(tf.sysconfig.get_build_info())
    return {k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in info.items()}


def install(recorder: Any) -> None:
    """Wire TensorFlow into the recorder: retraces, allocator memory, build facts."""
    ledger = getattr(recorder, "retrace_ledger", None) or RetraceLedger()
    install_retrace_tracking(ledger, recorder.guard)
    recorder.retrace_ledger = ledger
    recorder.add_epoch_source("tf_memory", allocator_source())
    recorder.add_fingerprint_source("tf_build", build_info)
