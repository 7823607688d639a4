"""PyTorch custom loops: optimizer steps, the first batch's inputs, CUDA memory, torch.compile.

A PyTorch loop has no fit() to wrap, so what Keras' callback reads from the model comes
from torch's own global hooks instead:

- Optimizers (`torch.optim.optimizer.register_optimizer_step_pre_hook`, one hook for every
  optimizer in the process): the step counter and learning rate at each epoch end (the
  top-level `iterations`, `optimizer_steps` and `lr` of the epoch record), and at the first
  step of each optimizer a `fit_start` record, as a Keras fit writes: the optimizer's class
  and hyperparameters, whether its state was empty at that first step (a resumed run whose
  optimizer state was never loaded), what state dicts were loaded before it, the model and
  the first batch's input statistics. That lets the restore checks (optimizer state, loss
  jump, learning rate, input shift) judge a PyTorch resume exactly as a Keras one.
- Inputs: a global forward pre-hook sees the first call of the outermost module (the model)
  and keeps statistics of that batch; it is removed at the first optimizer step (or the
  first epoch end, e.g. Keras on the torch backend, whose layers are torch modules but whose
  optimizers are Keras'), so it costs nothing after the first batch.
- CUDA memory (`torch_memory`): `memory_allocated` (live tensors), `max_memory_allocated`
  and `memory_reserved` (the caching allocator's pool) per device, only once the script has
  initialised CUDA (never initialised here). A leak grows `allocated`; a pool that grows
  while `allocated` stays flat is the cache, not a leak.
- torch.compile: recompilations are counted per function, with the guard that failed as the
  cause, in the same `retraces` block as tf.function traces; graph breaks per epoch in
  `torch_compile`. Installed at the first `torch.compile` call (importing torch._dynamo
  ourselves would cost the script seconds).

The per-step hook is a dict lookup and an add; its cost is calibrated once and counted in
`overhead_seconds` without timing every step.
"""

from __future__ import annotations

import functools
import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PART = "torch integration"
_MAX_OPTIMIZERS = 16
_MAX_REASONS = 5


def _jsonable(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value][:16]
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)[:200]


def state_step(state: Any) -> int | None:
    """The step counter of an optimizer's per-parameter state (live, or a state dict's
    "state" from a file): the first parameter's, or None."""
    for entry in state.values() if isinstance(state, Mapping) else ():
        step = entry.get("step") if isinstance(entry, Mapping) else None
        if step is None:
            return None
        try:
            return int(step.item() if hasattr(step, "item") else step)
        except (TypeError, ValueError):
            return None
    return None


def optimizer_config(optimizer: Any) -> dict[str, Any]:
    """The first parameter group's hyperparameters, named as in Keras' config where they match."""
    groups = getattr(optimizer, "param_groups", None) or [{}]
    config = {
        ("learning_rate" if k == "lr" else k): _jsonable(v) for k, v in groups[0].items() if k != "params"
    }
    if len(groups) > 1:
        config["param_groups"] = len(groups)
    return config


@dataclass(slots=True)
class _Optimizer:
    """What we know of one optimizer: steps seen here, and its state at our first sight."""

    index: int
    first_empty: bool
    first_step: int | None
    steps: int = 0
    epoch_steps: int = 0


class LoopTracker:
    """Follows optimizers and the model's first inputs; feeds the Recorder."""

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder
        self._lock = threading.Lock()
        self._optimizers: weakref.WeakKeyDictionary[Any, _Optimizer] = weakref.WeakKeyDictionary()
        self._loaded: Counter[str] = Counter()
        self._model: dict[str, Any] | None = None
        self._input_stats: dict[str, Any] | None = None
        self._top: Any = None
        self._depth = 0
        self._forward_handles: list[Any] = []
        self.step_cost = 0.0

    # -- optimizer steps (training thread, every step) --------------------------------

    def on_step(self, optimizer: Any, _args: Any, _kwargs: Any) -> None:
        known = self._optimizers.get(optimizer)
        if known is not None:
            known.steps += 1
            known.epoch_steps += 1
            return
        self._recorder.guard.run(PART, lambda: self._first_step(optimizer), None)

    def _first_step(self, optimizer: Any) -> None:
        t0 = time.perf_counter()
        with self._lock:
            if optimizer in self._optimizers or len(self._optimizers) >= _MAX_OPTIMIZERS:
                return
            known = _Optimizer(len(self._optimizers), not optimizer.state, state_step(optimizer.state))
            known.steps = known.epoch_steps = 1
            self._optimizers[optimizer] = known
        self._remove_forward_hooks()  # outside any forward: safe to change torch's hook dicts
        block = self._fit_block(optimizer, known)
        t_start = time.perf_counter()
        self._recorder.start(training=block)  # the run's set-up: run_start accounts for it
        setup = time.perf_counter() - t_start
        self._recorder.auto.adopt_fit(block["fit"])  # the last optimizer's fit ends first
        self._recorder.emit("fit_start", **block)
        self._recorder.add_overhead(time.perf_counter() - t0 - setup)

    def _fit_block(self, optimizer: Any, known: _Optimizer) -> dict[str, Any]:
        block: dict[str, Any] = {
            "fit": self._recorder.next_fit_index(),
            "backend": "torch",
            "source": "torch.optim",
        }
        if self._model:
            block["model"] = self._model
        block["optimizer"] = {
            "class": type(optimizer).__name__,
            "config": optimizer_config(optimizer),
            "state_empty_at_first_step": known.first_empty,
        }
        if known.first_step is not None:
            block["optimizer"]["step_at_first_step"] = known.first_step
        if self._loaded:
            block["state_loaded"] = dict(self._loaded)
        if self._input_stats:
            block["input_stats"] = self._input_stats
            rows = self._input_stats.get("rows")
            if isinstance(rows, int):
                block["batch_size"] = rows
        return block

    def stepped(self) -> bool:
        """Whether a torch optimizer has stepped in this process (explain's profiler choice)."""
        return len(self._optimizers) > 0

    def loaded(self, what: str) -> None:
        """A state dict was loaded into a module, optimizer, scheduler or scaler."""
        self._loaded[what] += 1

    # -- epoch ends --------------------------------------------------------------------

    def _by_age(self) -> list[tuple[Any, _Optimizer]]:
        """The optimizers in the order they first stepped (the first is the main one)."""
        with self._lock:
            return sorted(self._optimizers.items(), key=lambda kv: kv[1].index)

    def epoch_fields(self) -> dict[str, Any] | None:
        """`iterations`, `optimizer_steps`, `steps`, `lr` of the main (first) optimizer."""
        items = self._by_age()
        if self._input_stats is not None:
            self._remove_forward_hooks()
        if not items:
            return None
        optimizer, known = items[0]
        fields: dict[str, Any] = {"optimizer_steps": known.epoch_steps, "steps": known.epoch_steps}
        total_steps = sum(k.epoch_steps for _o, k in items)
        for _o, k in items:
            k.epoch_steps = 0
        self._recorder.add_overhead(total_steps * self.step_cost)
        iterations = _iterations(optimizer, known)
        if iterations is not None:
            fields["iterations"] = iterations
        groups = getattr(optimizer, "param_groups", None)
        if groups and isinstance(groups[0].get("lr"), int | float):
            fields["lr"] = float(groups[0]["lr"])
        return fields

    def saved_iterations(self) -> int | None:
        """The main optimizer's step now (for a save that does not hold the optimizer)."""
        items = self._by_age()
        return _iterations(*items[0]) if items else None

    # -- the first batch's inputs ------------------------------------------------------

    def watch_inputs(self) -> None:
        from torch.nn.modules import module

        self._forward_handles = [
            module.register_module_forward_pre_hook(self._pre_forward),
            module.register_module_forward_hook(self._post_forward),
        ]

    def _remove_forward_hooks(self) -> None:
        handles, self._forward_handles = self._forward_handles, []
        for handle in handles:
            handle.remove()

    def _pre_forward(self, module: Any, args: Any) -> None:
        self._depth += 1
        if self._depth != 1 or self._input_stats is not None:
            return
        if self._top is not None and module is not self._top:
            return
        self._top = module
        self._recorder.guard.run("torch input statistics", lambda: self._describe(module, args), None)

    def _post_forward(self, _module: Any, _args: Any, _output: Any) -> None:
        self._depth = max(0, self._depth - 1)

    def _describe(self, module: Any, args: Any) -> None:
        t0 = time.perf_counter()
        self._model = _model_info(module)
        first = args[0] if isinstance(args, tuple) and args else None
        if first is None or not hasattr(first, "detach"):
            self._input_stats = {
                "source": type(first).__name__,
                "skipped": "the model's input is not a tensor",
            }
            return
        from epochwatch.integrations.inputs import describe_inputs

        array = first.detach().to("cpu").numpy()
        stats = describe_inputs(array, None, int(array.shape[0]) if array.ndim else 1)
        if stats:
            stats["source"] = "first batch"
            stats["batches"] = 1
            self._input_stats = stats
        self._recorder.add_overhead(time.perf_counter() - t0)


def _iterations(optimizer: Any, known: _Optimizer) -> int | None:
    """The optimizer's own step counter; else our count where its state began empty here."""
    step = state_step(optimizer.state)  # the counter its state holds (Adam, AdamW, RMSprop...)
    if step is not None:
        return step
    # Stateful but counter-less (SGD with momentum): counted from empty.
    return known.steps if optimizer.state and known.first_empty else None


def _model_info(module: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"class": type(module).__name__}
    try:
        params = list(module.parameters())
        info["params"] = int(sum(p.numel() for p in params))
        info["trainable_params"] = int(sum(p.numel() for p in params if p.requires_grad))
    except Exception:
        pass
    return info


# -- CUDA memory ----------------------------------------------------------------------


def memory_source() -> Any:
    """CUDA allocator bytes per device, once the script has initialised CUDA."""
    import torch

    def sample() -> dict[str, Any] | None:
        if not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return None
        out: dict[str, Any] = {}
        for i in range(torch.cuda.device_count()):
            out[f"GPU:{i}"] = {
                "current_bytes": int(torch.cuda.memory_allocated(i)),
                "peak_bytes": int(torch.cuda.max_memory_allocated(i)),
                "reserved_bytes": int(torch.cuda.memory_reserved(i)),
                "source": "torch.cuda allocator",
            }
        return out or None

    return sample


def build_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"version": str(torch.__version__)}
    cuda = getattr(torch.version, "cuda", None)
    if cuda:
        info["cuda_version"] = str(cuda)
    return info


# -- torch.compile --------------------------------------------------------------------

_GUARD = re.compile(
    r"(?P<what>.*?)\s*(?P<kind>size|stride|dtype|device|type|id)\s+mismatch.*?expected\s+(?P<was>[^,]+),\s*actual\s+(?P<now>\S+)"
)


def explain_guard(reason: str) -> dict[str, str]:
    """One torch guard failure ("0/0: tensor 'x' size mismatch at index 0. expected 8, actual 9")
    as a retrace cause."""
    text = reason.split(": ", 1)[1] if re.match(r"^\d+/\d+: ", reason) else reason
    text = " ".join(text.split("#", 1)[0].split())  # guards carry "# source line" comments
    match = _GUARD.search(text)
    if match:
        kind = match["kind"]
        change = {"size": "shape", "stride": "shape", "dtype": "dtype"}.get(kind, "type")
        quoted = re.search(r"'([^']+)'", match["what"])
        arg = quoted.group(1) if quoted else match["what"][:80] or "?"
        return {"arg": arg, "change": change, "was": match["was"][:80], "now": match["now"].rstrip(".")[:80]}
    value = re.search(r"(?:L\['([^']+)'\]|^([\w.]+))\s*==\s*(\S+)", text)
    if value:
        arg = value.group(1) or value.group(2)
        return {"arg": arg, "change": "value", "was": value.group(3)[:80], "now": "another value"}
    return {"arg": "?", "change": "guard", "was": text[:80], "now": "failed"}


class CompileWatcher:
    """Counts torch.compile recompilations (with the failed guard) and graph breaks."""

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder
        self._breaks_seen: Counter[str] = Counter()
        self.installed = False

    def install(self) -> None:
        if self.installed:
            return
        self.installed = True
        from torch._dynamo import convert_frame, eval_frame

        from epochwatch.integrations.tf import RetraceLedger

        ledger = self._recorder.retrace_ledger or RetraceLedger()
        self._recorder.retrace_ledger = ledger
        guard = self._recorder.guard
        for module in (convert_frame, eval_frame):
            original = getattr(module, "get_and_maybe_log_recompilation_reasons", None)
            if original is None or getattr(original, "__epochwatch__", False):
                continue

            def wrapper(
                cache_entries: Any, frame: Any, *args: Any, __original: Any = original, **kwargs: Any
            ) -> Any:
                reasons = __original(cache_entries, frame, *args, **kwargs)
                if not kwargs.get("skip_logging") and reasons:
                    name = str(getattr(getattr(frame, "f_code", None), "co_name", "<compiled>"))
                    # One reason per cached entry, newest first: the newest says what changed last.
                    causes = [explain_guard(str(reasons[0]))]
                    guard.run("torch.compile tracking", lambda: ledger.count(name, causes, 0.0), None)
                return reasons

            wrapper.__epochwatch__ = True  # type: ignore[attr-defined]
            module.get_and_maybe_log_recompilation_reasons = wrapper
        self._recorder.add_epoch_source("torch_compile", self.graph_breaks)

    def graph_breaks(self) -> dict[str, Any] | None:
        from torch._dynamo.utils import counters

        now = Counter({str(k): int(v) for k, v in counters.get("graph_break", {}).items()})
        new = now - self._breaks_seen
        self._breaks_seen = now
        if not new:
            return None
        return {
            "graph_breaks": sum(new.values()),
            "reasons": [{"reason": r[:200], "count": n} for r, n in new.most_common(_MAX_REASONS)],
        }


def _wrap_compile(watcher: CompileWatcher, guard: Any, original: Any) -> Any:
    @functools.wraps(original)
    def compile(*args: Any, **kwargs: Any) -> Any:
        if not watcher.installed:
            guard.run("torch.compile tracking", watcher.install, None)
        return original(*args, **kwargs)

    compile.__epochwatch__ = True  # type: ignore[attr-defined]
    return compile


# -- wiring ---------------------------------------------------------------------------

_tracker: LoopTracker | None = None


def tracker() -> LoopTracker | None:
    """The process's LoopTracker (torch_saving asks it for the optimizer's step)."""
    return _tracker


def install(recorder: Any) -> None:
    """Wire PyTorch into the recorder (see the module docstring)."""
    global _tracker
    import torch
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    loop = LoopTracker(recorder)
    _tracker = loop
    register_optimizer_step_pre_hook(loop.on_step)
    loop.step_cost = _calibrate(loop)
    loop.watch_inputs()
    recorder.add_epoch_fields("torch optimizer", loop.epoch_fields)
    recorder.add_epoch_source("torch_memory", memory_source())
    recorder.add_fingerprint_source("torch", build_info)
    watcher = CompileWatcher(recorder)
    if not getattr(torch.compile, "__epochwatch__", False):
        torch.compile = _wrap_compile(watcher, recorder.guard, torch.compile)


def _calibrate(loop: LoopTracker) -> float:
    """What one on_step costs for a known optimizer (a dict lookup and two adds)."""

    class _Probe:
        state: dict[str, Any] = {}  # noqa: RUF012

    probe = _Probe()
    loop._optimizers[probe] = _Optimizer(-1, True, None)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        loop.on_step(probe, (), {})
    cost = (time.perf_counter() - t0) / n
    del loop._optimizers[probe]
    return cost
