"""Saves and restores through Keras and TF, recorded as `save`/`restore` records.

Where the patches sit, and why there (read against Keras 3.15 / TF 2.21):

- `keras.Model.save`, `.save_weights`, `.load_weights`: the public methods; ModelCheckpoint
  and BackupAndRestore call exactly these (`self.model.save(...)`,
  `self.model.save_weights(...)`, `self.model.load_weights(...)`), so callbacks need no
  patch of their own; the callback that called is found on the stack and named in `via`.
- `keras.src.saving.saving_lib.{save_model, load_model, save_weights_only,
  load_weights_only}` and `keras.src.legacy.saving.legacy_h5_format.{save_model_to_hdf5,
  load_model_from_hdf5}`: the funnels under every public alias (`keras.models.load_model`,
  `keras.saving.load_model`, `tf.keras.models.load_model`, `keras.saving.save_model`, ...).
  The aliases are bound by `from ... import` at Keras' import time, so patching them would
  miss copies; the funnels are looked up as module attributes on every call.
- `tf.train.Checkpoint._write` (the single funnel of `save`, `write` and
  `CheckpointManager.save`, per TF's own comment) and `tf.train.Checkpoint.read`/`.restore`
  (`CheckpointManager.restore_or_initialize` calls `restore`).
- `tensorflow.python.saved_model.save.save_and_return_nodes` and
  `tensorflow.python.saved_model.load.load_partial`: what `tf.saved_model.save`/`load`
  (and Keras' `model.export`) call.

Nested calls (Model.save -> saving_lib.save_model, restore -> read) are recorded once, by
the outermost patch, through a thread-local depth. A funnel that is missing in another
version is skipped with one notice; the rest still work. Every wrapper calls the original
first and records afterwards under the Guard: a failure in here never changes what Keras
or TF return or raise.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from epochwatch.checkpoints import capture
from epochwatch.checkpoints import files as cfiles
from epochwatch.checkpoints.events import SaveEvents
from epochwatch.checkpoints.inspect import inspect_file
from epochwatch.integrations import patch
from epochwatch.integrations.tf_unmatched import unmatched
from epochwatch.serials import serial_of

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "saving integration"
# How long the process may wait at exit for hashes of its last saves (the save most likely
# to be resumed from is the last one; without its hash the child cannot find this run).
EXIT_HASH_SECONDS = 60.0
# Callers whose saves and restores are named in `via`.
_CALLBACKS = ("ModelCheckpoint", "BackupAndRestore", "CheckpointManager")

_local = threading.local()
_state: dict[str, Any] = {}
_state_lock = threading.Lock()


# -- shared state --------------------------------------------------------------------


def events_for(recorder: Recorder) -> SaveEvents:
    """The process's SaveEvents (one for Keras and TF together), created on first use."""
    with _state_lock:
        events: SaveEvents | None = _state.get("events")
        if events is not None:
            return events
        from epochwatch.checkpoints import resume

        watcher = resume.ResumeWatcher(recorder)
        events = SaveEvents(
            recorder.emit,
            inspect=_inspect_with_tf,
            on_restore=watcher.on_restore,
            on_save=watcher.on_save,
            report_error=lambda part, exc: recorder.guard.disable(part, f"{type(exc).__name__}: {exc}"),
        )
        _state["events"] = events
        _state["watcher"] = watcher
        capture.install()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=events.worker.reset_after_fork)
        return events


def follow_restores() -> None:
    """Start following the run's records after a restore (another framework's integration
    calls this at its restores, as the Keras and TF ones do)."""
    watcher = _state.get("watcher")
    if watcher is not None:
        watcher.attach()


def _exit_hook(recorder: Recorder) -> None:
    """Flush pending hashes when the run ends, before run_end is written (once); and at
    interpreter exit before any library's own exit handler runs (see `_first_at_exit`)."""
    _first_at_exit()
    if _state.get("exit_hook"):
        return
    with _state_lock:
        if not _state.get("exit_hook"):
            on_finish = getattr(recorder, "on_finish", None)
            if callable(on_finish):
                on_finish(_close_at_exit)
            else:  # a stand-in recorder: flush at interpreter exit instead
                atexit.register(_close_at_exit)
            _state["exit_hook"] = True


def _first_at_exit() -> None:
    """Make `_close_at_exit` the next exit handler to run. atexit runs handlers last
    registered first; h5py registers its own (it unregisters its type converters) when it is
    imported, after `import epochwatch.hook`, so the hook's end of run came after it while
    the hashing thread could still be reading a just-saved .h5 with h5py: errors from
    h5py's ObjectID.__dealloc__ and, 2 times in 14, a segfault at exit. Registered again at
    every save and restore (a dict lookup and a list edit), it runs before the handlers of
    every library imported by then, and joins the thread: nothing of the hook reads files
    while the interpreter finalizes."""
    atexit.unregister(_close_at_exit)
    atexit.register(_close_at_exit)


def _close_at_exit() -> None:
    events: SaveEvents | None = _state.get("events")
    if events is not None:
        events.close(EXIT_HASH_SECONDS)


# -- the wrapper ---------------------------------------------------------------------


def _wrap(
    recorder: Recorder,
    original: Callable[..., Any],
    on_done: Callable[[tuple[Any, ...], dict[str, Any], Any, float, list[str]], None],
    *,
    restore: bool,
) -> Callable[..., Any]:
    """Call `original`; if this is the outermost save/restore on this thread, time it (and
    for a restore, capture its warnings), then report to `on_done` under the Guard."""

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "depth", 0) or not recorder.guard.enabled(PART):
            return original(*args, **kwargs)
        _local.depth = 1
        try:
            t0 = time.perf_counter()
            if restore:
                with capture.capturing() as messages:
                    result = original(*args, **kwargs)
            else:
                messages = []
                result = original(*args, **kwargs)
            seconds = time.perf_counter() - t0
        finally:
            _local.depth = 0
        t1 = time.perf_counter()
        _exit_hook(recorder)
        recorder.guard.run(PART, lambda: on_done(args, kwargs, result, seconds, messages), None)
        recorder.add_overhead(time.perf_counter() - t1)
        return result

    wrapper.__epochwatch__ = True  # type: ignore[attr-defined]
    return wrapper


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else None


def _fspath(value: Any) -> str | None:
    try:
        path = os.fspath(value)
    except TypeError:
        return None
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    return path if isinstance(path, str) and "://" not in path else None


# -- what the model holds ------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        if hasattr(value, "numpy"):
            value = value.numpy()
        return int(value)
    except Exception:
        return None


def optimizer_state(optimizer: Any) -> dict[str, Any] | None:
    """Class, step counter, whether it is built (has its slot variables), variable count."""
    if optimizer is None or isinstance(optimizer, str) or not hasattr(optimizer, "iterations"):
        return None
    out: dict[str, Any] = {"class": type(optimizer).__name__}
    iterations = _int(getattr(optimizer, "iterations", None))
    if iterations is not None:
        out["iterations"] = iterations
    built = getattr(optimizer, "built", None)
    if isinstance(built, bool):
        out["built"] = built
    with contextlib.suppress(Exception):
        out["variables"] = len(optimizer.variables)
    return out


def _optimizer_fields(state: dict[str, Any] | None, included: bool = True) -> dict[str, Any]:
    fields: dict[str, Any] = {"optimizer_included": bool(state) and included}
    if state:
        fields["optimizer"] = state
        if "iterations" in state:
            fields["iterations"] = state["iterations"]
    return fields


def _model_fields(model: Any, include_optimizer: bool = True) -> dict[str, Any]:
    name = getattr(model, "name", None)
    fields: dict[str, Any] = {"model": name} if isinstance(name, str) else {}
    state = optimizer_state(getattr(model, "optimizer", None))
    return {**fields, **_optimizer_fields(state, include_optimizer)}


def _via() -> str | None:
    """The Keras callback (ModelCheckpoint, BackupAndRestore) or CheckpointManager that made
    this call, if any: a few frames up the stack, read only when a save or restore happened."""
    owner = calling(_CALLBACKS)
    return type(owner).__name__ if owner is not None else None


def calling(names: tuple[str, ...], frames: int = 12) -> Any:
    """The instance of a class named in `names` whose method is among the `frames` callers
    of the function that asks (a Keras callback or a CheckpointManager saving, a TensorBoard
    callback making its writers); None if none. Read only where a save, a restore or a
    writer happened, never per step."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(frames):
        if frame is None:
            return None
        owner = frame.f_locals.get("self")
        if owner is not None and type(owner).__name__ in names:
            return owner
        frame = frame.f_back
    return None


def _made_by() -> dict[str, Any]:
    """For a save: `via` (as _via) and what its maker keeps (`keeps`: ModelCheckpoint's
    save_best_only, a CheckpointManager's max_to_keep), so a growing checkpoint directory's
    fix does not tell the script to do what it already does."""
    owner = calling(_CALLBACKS)
    if owner is None:
        return {}
    keeps = {  # a CheckpointManager holds its max_to_keep privately
        key: value
        for key in ("save_best_only", "max_to_keep")
        if isinstance(value := getattr(owner, key, getattr(owner, f"_{key}", None)), bool | int)
    }
    return {"via": type(owner).__name__, **({"keeps": keeps} if keeps else {}), **_best_of(owner)}


def _best_of(owner: Any) -> dict[str, Any]:
    """A ModelCheckpoint(save_best_only)'s `best`: the value it saves at (it updates `best`
    before saving) and which way is better, so a resumed run's first "best" save can be
    compared with the one its parent kept at that path (analysis/restore/best.py)."""
    if getattr(owner, "save_best_only", None) is not True:
        return {}
    monitor, way = (
        getattr(owner, "monitor", None),
        getattr(getattr(owner, "monitor_op", None), "__name__", ""),
    )
    try:
        value = float(owner.best)  # a NumPy or backend scalar
    except (AttributeError, TypeError, ValueError):
        return {}
    if not (math.isfinite(value) and isinstance(monitor, str) and way in ("less", "greater")):
        return {}
    return {"best": {"monitor": monitor[:200], "value": value, "lower_is_better": way == "less"}}


# -- Keras ---------------------------------------------------------------------------


def install_keras(recorder: Recorder) -> None:
    """Patch Keras' save/load entry points (see the module docstring)."""
    import keras

    events = events_for(recorder)

    def saved(api: str, model_at: int, path_at: int, path_name: str, include_kw: str | None = None) -> Any:
        def on_done(
            args: tuple[Any, ...], kwargs: dict[str, Any], _result: Any, seconds: float, _m: Any
        ) -> None:
            path = _fspath(_arg(args, kwargs, path_at, path_name))
            if path is None:
                return
            model = _arg(args, kwargs, model_at, "model")
            include = bool(kwargs.get(include_kw, True)) if include_kw else True
            fmt = cfiles.keras_format(path)
            events.saved(path, fmt, api, seconds, **_made_by(), **_model_fields(model, include))

        return lambda original: _wrap(recorder, original, on_done, restore=False)

    def restored(api: str, model_at: int | None, path_at: int, path_name: str) -> Any:
        def on_done(
            args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, seconds: float, messages: list[str]
        ) -> None:
            path = _fspath(_arg(args, kwargs, path_at, path_name))
            if path is None:
                return
            model = result if model_at is None else _arg(args, kwargs, model_at, "model")
            fields = _model_fields(model)
            fields.pop("optimizer_included", None)  # for a restore: what the file holds, found later
            serial = serial_of(model)
            if serial is not None:  # what it restored into: a fit of another model is not its resume
                fields["model_serial"] = serial
            fmt = cfiles.keras_format(path)
            _state["watcher"].attach()
            events.restored(path, fmt, api, seconds, messages, via=_via(), **fields)

        return lambda original: _wrap(recorder, original, on_done, restore=True)

    missing: list[str] = []
    model_cls = keras.Model
    for name, make in (
        ("save", saved("Model.save", 0, 1, "filepath")),
        ("save_weights", saved("Model.save_weights", 0, 1, "filepath")),
        ("load_weights", restored("Model.load_weights", 0, 1, "filepath")),
    ):
        if not patch(model_cls, name, make):
            missing.append(f"keras.Model.{name}")
    lib, h5 = "keras.src.saving.saving_lib", "keras.src.legacy.saving.legacy_h5_format"
    missing += _patch_funnels(
        (
            (lib, "save_model", saved("keras.saving.save_model", 0, 1, "filepath")),
            (lib, "save_weights_only", saved("keras.saving.save_weights", 0, 1, "filepath")),
            (lib, "load_model", restored("keras.saving.load_model", None, 0, "filepath")),
            (lib, "load_weights_only", restored("keras.saving.load_weights", 0, 1, "filepath")),
            (
                h5,
                "save_model_to_hdf5",
                saved("keras.saving.save_model", 0, 1, "filepath", "include_optimizer"),
            ),
            (h5, "load_model_from_hdf5", restored("keras.saving.load_model", None, 0, "filepath")),
        )
    )
    say_missing(recorder, PART, missing, "Keras")


def say_missing(recorder: Recorder, part: str, missing: list[str], framework: str) -> None:
    """One notice naming the entry points not found in this version of `framework`."""
    if missing:
        where = ", ".join(missing)
        message = f"not recording saves/restores through {where} (not found in this {framework})"
        recorder.emit("notice", part=part, message=message)


def _patch_funnels(funnels: tuple[tuple[str, str, Callable[..., Any]], ...]) -> list[str]:
    """Patch each (module, function, make); the names of those not found in this version."""
    missing: list[str] = []
    for module_name, name, make in funnels:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            missing.append(f"{module_name}.{name}")
            continue
        if not patch(module, name, make):
            missing.append(f"{module_name}.{name}")
    return missing


# -- TensorFlow ----------------------------------------------------------------------


def _tracked(checkpoint: Any) -> list[Any]:
    """What a tf.train.Checkpoint tracks (its public attributes)."""
    return [v for k, v in vars(checkpoint).items() if not k.startswith("_")]


def _checkpoint_fields(checkpoint: Any) -> dict[str, Any]:
    """The optimizer a tf.train.Checkpoint tracks (directly, or as a tracked model's)."""
    for child in _tracked(checkpoint):
        state = optimizer_state(child) if hasattr(child, "apply_gradients") else None
        if state is None:
            state = optimizer_state(getattr(child, "optimizer", None))
        if state:
            return _optimizer_fields(state)
    return {"optimizer_included": False}


def _tracked_model_serial(checkpoint: Any) -> int | None:
    """The serial of the Keras model a tf.train.Checkpoint tracks (the first one), if any."""
    for child in _tracked(checkpoint):
        if hasattr(child, "fit") and hasattr(child, "optimizer"):
            return serial_of(child)
    return None


def _tf_label() -> str:
    """Which public call led to Checkpoint._write: save, write, or CheckpointManager.save."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(10):
        if frame is None:
            break
        if frame.f_code.co_name in ("save", "write"):
            owner = type(frame.f_locals.get("self")).__name__
            if owner in ("Checkpoint", "CheckpointManager"):
                return f"tf.train.{owner}.{frame.f_code.co_name}"
        frame = frame.f_back
    return "tf.train.Checkpoint.write"


def install_tf(recorder: Recorder) -> None:
    """Patch tf.train.Checkpoint and tf.saved_model (see the module docstring)."""
    import tensorflow as tf

    events = events_for(recorder)
    missing: list[str] = []
    checkpoint_cls = tf.train.Checkpoint

    def on_write(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, seconds: float, _m: Any) -> None:
        path = _fspath(
            result if isinstance(result, str | bytes | os.PathLike) else _arg(args, kwargs, 1, "file_prefix")
        )
        if path is None:
            return
        fields = _checkpoint_fields(args[0])
        options = _arg(args, kwargs, 2, "options")
        if getattr(options, "experimental_enable_async_checkpoint", False):
            fields["async"] = True  # TF writes in the background: the bytes may not be there yet
        events.saved(path, cfiles.TF_CHECKPOINT, _tf_label(), seconds, **_made_by(), **fields)

    def on_restore(api: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def done(
            args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, seconds: float, messages: list[str]
        ) -> None:
            path = _fspath(_arg(args, kwargs, 1, "save_path"))
            if path is None:  # restore(manager.latest_checkpoint) with no checkpoint found
                _state["watcher"].restored_nothing(api)
                return
            fields = _checkpoint_fields(args[0])
            fields.pop("optimizer_included", None)
            fields["unmatched"] = unmatched(result)
            if fields["unmatched"] is None and hasattr(result, "assert_existing_objects_matched"):
                _state["watcher"].recheck_at_next_epoch(path, lambda: unmatched(result))
            serial = _tracked_model_serial(args[0])
            if serial is not None:
                fields["model_serial"] = serial
            fmt = cfiles.SAVED_MODEL if os.path.isdir(path) else cfiles.TF_CHECKPOINT
            _state["watcher"].attach()
            events.restored(path, fmt, api, seconds, messages, via=_via(), **fields)

        return lambda original: _wrap(recorder, original, done, restore=True)

    if not patch(checkpoint_cls, "_write", lambda o: _wrap(recorder, o, on_write, restore=False)):
        missing.append("tf.train.Checkpoint._write")
    for name in ("restore", "read"):
        if not patch(checkpoint_cls, name, on_restore(f"tf.train.Checkpoint.{name}")):
            missing.append(f"tf.train.Checkpoint.{name}")

    missing += _install_saved_model(recorder, events)
    say_missing(recorder, PART, missing, "TF")


def _install_saved_model(recorder: Recorder, events: SaveEvents) -> list[str]:
    """Patch tf.saved_model's save and load funnels; the names not found in this TF."""

    def on_sm_save(
        args: tuple[Any, ...], kwargs: dict[str, Any], _result: Any, seconds: float, _m: Any
    ) -> None:
        path = _fspath(_arg(args, kwargs, 1, "export_dir"))
        if path is None:
            return
        obj = _arg(args, kwargs, 0, "obj")
        fields = _model_fields(obj) if hasattr(obj, "optimizer") else _checkpoint_fields(obj)
        events.saved(path, cfiles.SAVED_MODEL, "tf.saved_model.save", seconds, **fields)

    def on_sm_load(
        args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, seconds: float, messages: list[str]
    ) -> None:
        path = _fspath(_arg(args, kwargs, 0, "export_dir"))
        if path is None:
            return
        root = result.get("root") if isinstance(result, dict) else None
        fields = _model_fields(root) if hasattr(root, "optimizer") else {}
        fields.pop("optimizer_included", None)
        _state["watcher"].attach()
        events.restored(path, cfiles.SAVED_MODEL, "tf.saved_model.load", seconds, messages, **fields)

    return _patch_funnels(
        (
            (
                "tensorflow.python.saved_model.save",
                "save_and_return_nodes",
                lambda o: _wrap(recorder, o, on_sm_save, restore=False),
            ),
            (
                "tensorflow.python.saved_model.load",
                "load_partial",
                lambda o: _wrap(recorder, o, on_sm_load, restore=True),
            ),
        )
    )


# -- file inspection on the hashing thread -------------------------------------------


def _inspect_with_tf(path: str, fmt: str) -> dict[str, Any]:
    """What the file holds; TF-specific formats need TF's readers, which are loaded by now."""
    if fmt == cfiles.TF_CHECKPOINT:
        return _tf_checkpoint_contents(path)
    if fmt == cfiles.SAVED_MODEL:
        return _saved_model_contents(path)
    return inspect_file(path, fmt)


def _tf_checkpoint_contents(path: str) -> dict[str, Any]:
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return {}
    names = [name for name, _shape in tf.train.list_variables(path)]
    optimizer = [n for n in names if n.startswith("optimizer/") or "/optimizer/" in n]
    out: dict[str, Any] = {"optimizer_included": bool(optimizer), "file_optimizer_variables": len(optimizer)}
    counters = [n for n in optimizer if n.endswith("_iterations/.ATTRIBUTES/VARIABLE_VALUE")]
    if len(counters) == 1:
        value = tf.train.load_variable(path, counters[0])
        if getattr(value, "shape", None) == ():
            out["file_iterations"] = int(value)
    return out


def _saved_model_contents(path: str) -> dict[str, Any]:
    pb = os.path.join(path, "saved_model.pb")
    if not os.path.isfile(pb) or os.path.getsize(pb) > 256 * 1024 * 1024:
        return {}
    from tensorflow.core.protobuf import saved_model_pb2

    message = saved_model_pb2.SavedModel()
    with open(pb, "rb") as fh:
        message.ParseFromString(fh.read())
    if not message.meta_graphs:
        return {}
    info = message.meta_graphs[0].meta_info_def
    written: dict[str, Any] = {}
    if info.tensorflow_version:
        written["tensorflow"] = info.tensorflow_version
    if info.tensorflow_git_version:
        written["tensorflow_git"] = info.tensorflow_git_version
    return {"written_with": written} if written else {}
