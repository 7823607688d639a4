"""JAX (plain, or as Keras' backend): jit recompilations as retraces, the device allocator.

Recompilations: JAX reports every top-level jit trace through `jax.monitoring`: a scalar
event `/jax/core/compile/jaxpr_trace_duration` when tracing starts and a duration event of
the same name when it ends, both with `fun_name`, and `backend_compile_duration` for the
XLA compile that follows. A trace is a jit cache miss, so each one counts as a new trace of
`fun_name` in the same `retraces` block tf.function traces use (retrace_storm reads it
unchanged). The cause: at the start event, the frame that is about to trace holds the
abstract input types (`in_type`) and the argument names (`dbg.arg_names`); comparing them
with the same function's previous trace names the argument whose shape or dtype changed.
That frame is JAX-internal and may change between versions: when it is not found, the
trace is counted without a cause. A trace of types the same name compiled before is a new
jitted function (`jax.jit` called again inside the loop): its cause is `jitted_anew`.
Costs only at trace time, never per step.

Memory: `device.memory_stats()` (`bytes_in_use`, `peak_bytes_in_use`, `bytes_limit`) per
device, read at each epoch end. NVML cannot see inside JAX's pool (it reserves 75% of a GPU
up front), so this is the only view of a device leak. CPU devices return None there; for
them the live arrays' bytes per device (`jax.live_arrays()`) stand in, which is what a
callback that keeps device arrays grows.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from epochwatch.guard import Guard
from epochwatch.integrations.tf import RetraceLedger, cause

TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_MAX_CAUSES = 5
_MAX_FRAMES = 12
_MAX_SEEN = 64  # signatures kept per function name (a storm of new shapes keeps the newest)
JITTED_ANEW = "jitted_anew"  # a cause's change: these types were compiled before, by another jit


def _avals(in_type: Any) -> list[tuple[Any, str]] | None:
    """(shape, dtype) per flat argument of an `in_type` (a FlatTree or a tuple of avals)."""
    values = getattr(in_type, "vals", in_type)
    try:
        return [(tuple(getattr(a, "shape", ())), str(getattr(a, "dtype", "?"))) for a in values]
    except TypeError:
        return None


def _describe(aval: tuple[Any, str]) -> str:
    return f"{aval[1]}{list(aval[0])}"


def explain(
    previous: list[tuple[Any, str]] | None,
    current: list[tuple[Any, str]],
    names: Any,
    seen: bool = False,
) -> list[dict[str, str]]:
    """Which flat arguments changed shape or dtype since the previous trace of a function;
    `seen`: a function of this name compiled these very types before, so this one is a new
    jitted function (`jax.jit(...)` called again, in the loop: jax803's JIT_IN_LOOP compiled
    each bucket width again every epoch, read as "`ids` changes shape")."""
    if previous is None:
        return [cause("*", "new", "", "first trace")]
    labels = list(names) if isinstance(names, tuple | list) and len(names) == len(current) else None
    if seen:  # named by what differs from the last compile (the types each new one compiles)
        same = len(previous) == len(current)
        changed = [i for i, now in enumerate(current) if not same or previous[i] != now][:3]
        text = ", ".join(f"{labels[i] if labels else f'args[{i}]'} {_describe(current[i])}" for i in changed)
        return [cause("*", JITTED_ANEW, "compiled before", text[:200] or "same types")]
    if len(previous) != len(current):
        return [cause("*", "structure", f"{len(previous)} arrays", f"{len(current)} arrays")]
    out: list[dict[str, str]] = []
    for i, (was, now) in enumerate(zip(previous, current, strict=True)):
        if was == now:
            continue
        arg = str(labels[i]) if labels else f"args[{i}]"
        change = "dtype" if was[1] != now[1] else "shape"
        out.append(cause(arg, change, _describe(was), _describe(now)))
        if len(out) >= _MAX_CAUSES:
            break
    return out


class JitWatcher:
    """Turns jax.monitoring's compile events into RetraceLedger counts, per function."""

    def __init__(self, ledger: RetraceLedger, guard: Guard) -> None:
        self._ledger = ledger
        self._guard = guard
        self._last: dict[str, list[tuple[Any, str]]] = {}
        # Every signature each name compiled (at most _MAX_SEEN): a trace of one seen before
        # is a new jitted function of that name, not a change of shape.
        self._seen: dict[str, dict[tuple[tuple[Any, str], ...], int | None]] = {}
        self._pending = threading.local()

    def on_scalar(self, event: str, value: float, **kwargs: Any) -> None:
        if event != TRACE_EVENT:
            return
        name = str(kwargs.get("fun_name") or "<jit>")
        self._guard.run("jax recompile tracking", lambda: self._started(name), None)

    def _started(self, name: str) -> None:
        frame: FrameType | None = sys._getframe(1)
        found: dict[str, Any] | None = None
        for _ in range(_MAX_FRAMES):
            if frame is None:
                break
            if "in_type" in frame.f_locals:
                found = frame.f_locals
                break
            frame = frame.f_back
        causes: list[dict[str, str]] = []
        if found is not None:
            current = _avals(found["in_type"])
            if current is not None:
                names = getattr(found.get("dbg"), "arg_names", None)
                key = tuple(current)
                seen = self._seen.setdefault(name, {})
                # Which jitted object traces (JAX's PjitInfo, one per jax.jit call): the same
                # one with types it compiled before changed a static argument, not a new jit.
                jit = id(found["ji"]) if "ji" in found else None
                anew = key in seen and (jit is None or seen[key] != jit)
                causes = explain(self._last.get(name), current, names, anew)
                self._last[name] = current
                seen[key] = jit
                if len(seen) > _MAX_SEEN:
                    del seen[next(iter(seen))]
        self._pending.name = name
        self._pending.causes = causes

    def on_duration(self, event: str, duration_secs: float, **kwargs: Any) -> None:
        if event == TRACE_EVENT:
            name = str(kwargs.get("fun_name") or "<jit>")
            causes = (
                getattr(self._pending, "causes", []) if getattr(self._pending, "name", None) == name else []
            )
            self._pending.name = None
            self._guard.run(
                "jax recompile tracking", lambda: self._ledger.count(name, causes, float(duration_secs)), None
            )
        elif event == COMPILE_EVENT:
            self._guard.run(
                "jax recompile tracking", lambda: self._ledger.count_build(float(duration_secs)), None
            )


def backend_started() -> bool:
    """Whether the training has started a JAX backend already.

    Keras 3 imports JAX whenever it is installed, whatever its backend, so `import jax` says
    nothing about the run. Asking for devices would start a backend, and on a GPU host JAX's
    backend takes 75% of each GPU's memory at once: a TF or PyTorch run must never pay that
    for a fingerprint. So JAX's devices are read only once the script itself started JAX.
    """
    bridge = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(bridge, "_backends", None))


def memory_source() -> Callable[[], dict[str, Any] | None]:
    """Bytes in use and peak per JAX device (`GPU:0`, `CPU:0`), from JAX itself."""
    import jax

    def sample() -> dict[str, Any] | None:
        if not backend_started():
            return None
        out: dict[str, Any] = {}
        missing: list[Any] = []
        for device in jax.local_devices():
            stats = device.memory_stats()
            key = f"{str(device.platform).upper()}:{device.id}"
            if stats and "bytes_in_use" in stats:
                block = {"current_bytes": int(stats["bytes_in_use"]), "source": "jax memory_stats"}
                if "peak_bytes_in_use" in stats:
                    block["peak_bytes"] = int(stats["peak_bytes_in_use"])
                if "bytes_limit" in stats:
                    block["limit_bytes"] = int(stats["bytes_limit"])
                out[key] = block
            else:
                missing.append(device)
        if missing:
            live: dict[Any, int] = {d: 0 for d in missing}
            for array in jax.live_arrays():
                for device in array.devices():
                    if device in live:
                        live[device] += int(array.nbytes) // max(1, len(array.devices()))
            for device, total in live.items():
                key = f"{str(device.platform).upper()}:{device.id}"
                out[key] = {"current_bytes": total, "source": "jax live_arrays"}
        return out or None

    return sample


def build_info() -> dict[str, Any]:
    """JAX's version, and its devices when the script started a JAX backend (see backend_started)."""
    import jax

    info: dict[str, Any] = {"version": str(jax.__version__)}
    if backend_started():
        info["backend"] = str(jax.default_backend())
        info["devices"] = [str(getattr(d, "device_kind", d.platform)) for d in jax.local_devices()][:16]
    return info


def install(recorder: Any) -> None:
    """Wire JAX into the recorder: jit recompilations, device memory, versions."""
    from jax import monitoring

    ledger = getattr(recorder, "retrace_ledger", None) or RetraceLedger()
    recorder.retrace_ledger = ledger
    watcher = JitWatcher(ledger, recorder.guard)
    # Older JAX has no scalar events (no causes then) or no fun_name (counted as `<jit>`).
    scalar = getattr(monitoring, "register_scalar_listener", None)
    if scalar is not None:
        scalar(watcher.on_scalar)
    monitoring.register_event_duration_secs_listener(watcher.on_duration)
    recorder.add_epoch_source("jax_memory", memory_source())
    recorder.add_fingerprint_source("jax", build_info)
