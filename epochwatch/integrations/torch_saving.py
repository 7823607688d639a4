"""PyTorch saves and restores, recorded as the same `save`/`restore` records as Keras'.

- `torch.save(obj, path)` / `torch.load(path)` (module attributes, looked up at every call;
  `torch.serialization.save/load` are the same functions and get the same wrapper): the
  file, its hash (off-thread, by the shared SaveEvents), and what the saved or loaded object
  holds, read from the object in hand rather than from the file: which state dicts
  (`contents`: model, optimizer, scheduler, scaler), whether the optimizer's is there
  (`optimizer_included`) and its step counter (`iterations` at a save, `file_iterations` at
  a restore). A save that holds no optimizer still gets `iterations` from the live
  optimizer, so the resumed run can be told "the parent was at step N".
- `load_state_dict` of modules, optimizers, LR schedulers and GradScalers: counted, and
  listed in the `fit_start` of the first optimizer step that follows (`state_loaded`),
  which is the evidence of what the resumed run did and did not restore.

Only paths are recorded: a save to a BytesIO or an open file handle has no path to match a
restore with and is left alone. Wrappers call the original first and record afterwards
under the Guard (see integrations/saving.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from epochwatch.checkpoints import files as cfiles
from epochwatch.integrations import patch, saving
from epochwatch.integrations.torch import state_step

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "torch saving integration"
_MAX_ENTRIES = 64


def _kind(value: Any) -> str | None:
    """What one state dict in a checkpoint is, by the keys torch writes into each kind."""
    if not isinstance(value, Mapping):
        return None
    keys = set(value.keys()) if len(value) <= 10_000 else set()
    if {"state", "param_groups"} <= keys:
        return "optimizer"
    if {"scale", "growth_factor", "backoff_factor"} <= keys:
        return "scaler"
    if "last_epoch" in keys and ("base_lrs" in keys or "_step_count" in keys):
        return "scheduler"
    if keys and all(hasattr(v, "shape") and hasattr(v, "dtype") for v in list(value.values())[:_MAX_ENTRIES]):
        return "model"
    return None


def describe(obj: Any) -> dict[str, Any]:
    """`contents`, `optimizer_included` and the optimizer's step, from a saved/loaded object."""
    kinds: list[str] = []
    optimizer: Mapping[str, Any] | None = None
    own = _kind(obj)
    entries: list[Any] = (
        [obj] if own else list(obj.values())[:_MAX_ENTRIES] if isinstance(obj, Mapping) else []
    )
    for value in entries:
        kind = _kind(value)
        if kind is None:
            continue
        kinds.append(kind)
        if kind == "optimizer" and optimizer is None:
            optimizer = value
    out: dict[str, Any] = {"contents": sorted(set(kinds)), "optimizer_included": optimizer is not None}
    if optimizer is not None:
        step = state_step(optimizer.get("state"))
        if step is not None:
            out["optimizer_steps_in_file"] = step
    return out


def _live_iterations() -> int | None:
    from epochwatch.integrations import torch as torch_integration

    loop = torch_integration.tracker()
    return loop.saved_iterations() if loop is not None else None


def install(recorder: Recorder) -> None:
    """Patch torch.save/torch.load and the load_state_dict methods (see the module docstring)."""
    import torch
    import torch.serialization

    events = saving.events_for(recorder)

    def on_save(args: tuple[Any, ...], kwargs: dict[str, Any], _result: Any, seconds: float, _m: Any) -> None:
        path = saving._fspath(saving._arg(args, kwargs, 1, "f"))
        if path is None:
            return
        fields = describe(saving._arg(args, kwargs, 0, "obj"))
        steps = fields.pop("optimizer_steps_in_file", None)
        if steps is None:
            steps = _live_iterations()
        if steps is not None:
            fields["iterations"] = steps
        events.saved(path, cfiles.TORCH, "torch.save", seconds, **fields)

    def on_load(
        args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, seconds: float, messages: list[str]
    ) -> None:
        path = saving._fspath(saving._arg(args, kwargs, 0, "f"))
        if path is None:
            return
        fields = describe(result)
        steps = fields.pop("optimizer_steps_in_file", None)
        if steps is not None:
            fields["file_iterations"] = steps
        saving.follow_restores()
        events.restored(path, cfiles.TORCH, "torch.load", seconds, messages, **fields)

    missing: list[str] = []
    for name, done, restore in (("save", on_save, False), ("load", on_load, True)):
        original = getattr(torch.serialization, name, None)
        if original is None:
            missing.append(f"torch.{name}")
            continue
        if getattr(original, "__epochwatch__", False):
            continue
        wrapper = saving._wrap(recorder, original, done, restore=restore)
        torch.serialization.__dict__[name] = wrapper
        if getattr(torch, name, None) is original:
            setattr(torch, name, wrapper)
    _patch_loaders(recorder, missing)
    saving.say_missing(recorder, PART, missing, "PyTorch")


def _patch_loaders(recorder: Recorder, missing: list[str]) -> None:
    """Count load_state_dict calls per kind of object (they carry no path of their own)."""
    import torch

    owners: list[tuple[str, Any]] = [
        ("model", torch.nn.Module),
        ("optimizer", torch.optim.Optimizer),
        ("scheduler", getattr(torch.optim.lr_scheduler, "LRScheduler", None)),
        ("scaler", getattr(getattr(torch, "amp", None), "GradScaler", None)),
    ]
    for what, owner in owners:
        counted = functools.partial(_counted_load, what=what, recorder=recorder)
        if owner is None or not patch(owner, "load_state_dict", counted):
            missing.append(f"{what}.load_state_dict")


def _counted_load(original: Callable[..., Any], what: str, recorder: Recorder) -> Callable[..., Any]:
    """`load_state_dict` that counts its loads of `what` into the torch loop's tracker."""
    from epochwatch.integrations import torch as torch_integration

    @functools.wraps(original)
    def load_state_dict(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        loop = torch_integration.tracker()
        if loop is not None:
            recorder.guard.run(PART, lambda: loop.loaded(what), None)
        return result

    return load_state_dict
