"""What a Keras fit is, read once at its start: the `fit_start` block (model, optimizer,
data, callbacks and the directories they write, distribution), the batch size, and what
the loop of fits in this process shows (`ModelLoop`).

Nothing here runs per step; everything reads attributes, never the data itself.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from typing import Any, Protocol

from epochwatch.guard import Guard
from epochwatch.integrations.eager import functions_run_eagerly
from epochwatch.serials import serial_of

_ROLE_BY_CALLBACK = {
    "ModelCheckpoint": ("filepath", "checkpoint"),
    "BackupAndRestore": ("backup_dir", "backup"),
    "TensorBoard": ("log_dir", "tensorboard"),
}


class ModelLoop:
    """What a loop of fits in this process shows (models_in_loop) beyond each fit's model
    serial (serials.py): how many times the script called clear_session()."""

    def __init__(self) -> None:
        self.clear_session_calls = 0


class FitFacts(Protocol):
    """What `fit_block` reads of a fit (keras_callback.FitWatch holds it)."""

    arguments: dict[str, Any]
    user_callbacks: list[Any]
    batch_size: int | None
    loop: ModelLoop

    @property
    def model(self) -> Any: ...

    @property
    def params(self) -> dict[str, Any]: ...


def fit_batch_size(arguments: dict[str, Any]) -> int | None:
    """The fit's batch size: fixed for the fit, so read once, not per epoch."""
    explicit = arguments.get("batch_size")
    if isinstance(explicit, int):
        return explicit
    x = arguments.get("x")
    spec = getattr(x, "element_spec", None)
    if spec is not None:
        first = spec[0] if isinstance(spec, tuple) else spec
        if isinstance(first, dict) and first:
            first = next(iter(first.values()))
        shape = getattr(first, "shape", None)
        if shape is not None and len(shape) and shape[0] is not None:
            return int(shape[0])
        return None
    # Keras' default for arrays
    return 32 if hasattr(x, "shape") or isinstance(x, list | tuple | dict) else None


def loss_name(loss: Any) -> str:
    """A loss by its name; a multi-output model's dict or list of losses by theirs ("priority:
    binary_crossentropy, tags: ..."), never their reprs (object addresses, kwargs)."""
    if isinstance(loss, dict):
        return ", ".join(f"{key}: {loss_name(value)}" for key, value in list(loss.items())[:16])
    if isinstance(loss, list | tuple):
        return ", ".join(loss_name(value) for value in loss[:16])
    if isinstance(loss, str):
        return loss
    return str(getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__)


def _describe_input(x: Any) -> dict[str, Any]:
    """What was fed to fit, without reading any of it."""
    out: dict[str, Any] = {"kind": type(x).__name__}
    with contextlib.suppress(Exception):
        from epochwatch.integrations.input_wait import settings

        out["settings"] = settings(x)
    spec = getattr(x, "element_spec", None)
    if spec is not None:
        out["kind"] = "tf.data.Dataset"
        out["element_spec"] = str(spec)[:2000]
        with contextlib.suppress(Exception):
            out["cardinality"] = int(x.cardinality())
        return out
    arrays = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list | tuple) else [("x", x)]
    shapes, dtypes = {}, {}
    for key, value in arrays:
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            shapes[str(key)] = list(value.shape)
            dtypes[str(key)] = str(value.dtype)
    if shapes:
        out["shapes"], out["dtypes"] = shapes, dtypes
    return out


def fit_block(watch: FitFacts, fit_index: int, guard: Guard) -> dict[str, Any]:
    """The `fit_start` record: the model, optimizer, data and callbacks of this fit."""
    model = watch.model
    arguments = watch.arguments
    params = watch.params
    block: dict[str, Any] = {"fit": fit_index}
    keras = sys.modules.get("keras")  # Keras 3, if the script uses it (never imported here)
    with contextlib.suppress(Exception):
        block["backend"] = str(keras.backend.backend())  # type: ignore[union-attr]
    block["model"] = _model(model, serial_of(model))
    block["clear_session_calls"] = watch.loop.clear_session_calls
    block.update(execution(model))
    optimizer, attribute, others = training_optimizer(model)
    if optimizer is not None:
        opt: dict[str, Any] = {"class": type(optimizer).__name__}
        with contextlib.suppress(Exception):
            opt["config"] = optimizer.get_config()
        if attribute is not None:
            opt["attribute"] = attribute
            block["optimizers"] = {name: type(value).__name__ for name, value in others.items()}
            block["compiled_optimizer_unused"] = type(model.optimizer).__name__
        block["optimizer"] = opt
    loss = getattr(model, "loss", None)
    if loss is not None:
        block["loss"] = loss_name(loss)
    block["epochs"] = arguments.get("epochs", params.get("epochs"))
    block["initial_epoch"] = arguments.get("initial_epoch", 0)
    if params.get("steps"):
        block["steps_per_epoch"] = params["steps"]
    batch_size = watch.batch_size  # read once, when the fit was prepared
    block["batch_size"] = batch_size
    x = arguments.get("x")
    if x is not None:
        block["input"] = _describe_input(x)
        y = arguments.get("y")
        stats = guard.run("input statistics", lambda: _input_stats(x, y, batch_size), None)
        if stats:
            block["input_stats"] = stats
    block["distribution"] = _distribution(model)
    block["callbacks"] = [type(cb).__name__ for cb in watch.user_callbacks]
    block["tensorboard"] = tensorboard_settings(watch.user_callbacks)
    watched = _watched_dirs(watch.user_callbacks)
    if watched:
        block["watched"] = watched
    return {k: v for k, v in block.items() if v is not None}  # what is not known is left out


def training_optimizer(model: Any) -> tuple[Any, str | None, dict[str, Any]]:
    """(the optimizer the fit trains with, the model attribute naming it, the optimizers the
    model holds as attributes). Usually `model.optimizer` (attribute None). A model whose
    `compile(d_optimizer=..., g_optimizer=...)` calls `super().compile()` with no optimizer
    (the Keras guide's GAN, keras#16019) holds Keras's default RMSprop there, which its own
    `train_step` never uses: its optimizer attributes are named instead, the first one as
    the optimizer (whose rate and step counter the epochs read). One look at the model's
    public attributes, once per fit."""
    compiled = getattr(model, "optimizer", None)
    if compiled is None or not _compile_default(compiled):
        return compiled, None, {}
    found: dict[str, Any] = {}
    try:
        attributes = list(vars(model).items())[:1000]
    except TypeError:
        return compiled, None, {}
    for name, value in attributes:
        if name.startswith("_") or value is compiled or isinstance(value, type):
            continue
        if callable(getattr(type(value), "apply_gradients", None)) and hasattr(value, "iterations"):
            found[name] = value
            if len(found) == 8:
                break
    if not found:
        return compiled, None, {}
    name, first = next(iter(found.items()))
    return first, name, found


def _compile_default(optimizer: Any) -> bool:
    """Whether `optimizer` is what Keras's compile() puts there when given none: RMSprop at
    its default rate."""
    if type(optimizer).__name__ != "RMSprop":
        return False
    try:
        rate = float(optimizer.get_config().get("learning_rate"))
    except Exception:
        return False
    return abs(rate - 0.001) < 1e-9  # a float32 variable: 0.0010000000474974513


def execution(model: Any) -> dict[str, Any]:
    """How the fit's step runs: `run_eagerly`, the model's own setting
    (`compile(run_eagerly=True)`, `model.run_eagerly = True`; tf_keras' property also folds
    in the global flag, so its stored setting is read: None there is "not set"),
    `functions_run_eagerly` (TensorFlow's global flag) and `dynamic` (tf_keras: layers that
    can only run eagerly). Attribute reads, once per fit; absent where unreadable."""
    out: dict[str, Any] = {}
    with contextlib.suppress(Exception):  # tf_keras' property raises on conflicting settings
        stored = getattr(model, "_run_eagerly", model)  # the model itself: no such attribute
        value = stored if isinstance(stored, bool) else False if stored is None else model.run_eagerly
        if isinstance(value, bool):
            out["run_eagerly"] = value
    flag = functions_run_eagerly()
    if flag is not None:
        out["functions_run_eagerly"] = flag
    with contextlib.suppress(Exception):
        if getattr(model, "dynamic", False) is True:
            out["dynamic"] = True
    return out


def tensorboard_settings(callbacks: list[Any]) -> dict[str, Any] | None:
    """What a TensorBoard callback writes each epoch (images, histograms, scalars every N
    batches): what a fix for its growing log directory can name, rather than advise what
    the script already does."""
    for cb in callbacks:
        if type(cb).__name__ != "TensorBoard":
            continue
        out: dict[str, Any] = {}
        for name in ("histogram_freq", "write_images", "write_graph", "update_freq", "embeddings_freq"):
            value = getattr(cb, name, None)
            if isinstance(value, bool | int | str):
                out[name] = value
        return out
    return None


def _model(model: Any, serial: int | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": getattr(model, "name", None),
        "class": type(model).__name__,
    }
    if serial is not None:  # an object that takes no attribute: told apart by name
        info["serial"] = serial
    try:
        info["params"] = int(model.count_params())
        info["trainable_params"] = int(
            sum(math.prod(int(d) for d in w.shape) for w in model.trainable_weights)
        )
    except Exception:
        pass
    info["layers"] = len(getattr(model, "layers", []) or [])
    return info


def _watched_dirs(callbacks: list[Any]) -> dict[str, str]:
    """The directories the user's callbacks write (checkpoints, backups, TensorBoard logs)."""
    watched = {}
    for cb in callbacks:
        attr_role = _ROLE_BY_CALLBACK.get(type(cb).__name__)
        target = getattr(cb, attr_role[0], None) if attr_role else None
        if attr_role and isinstance(target, str | os.PathLike):
            path = os.fspath(target)
            directory = os.path.dirname(path) if attr_role[1] == "checkpoint" else path
            watched[os.path.abspath(directory or ".")] = attr_role[1]
    return watched


def _distribution(model: Any) -> dict[str, Any] | None:
    """The distribution strategy of the fit: its class, replicas in sync and workers.

    tf.distribute (TensorFlow backend) through the model's strategy; Keras 3's own
    `keras.distribution` (JAX) when one is set. None for the default, one-device strategy.
    """
    out: dict[str, Any] = {}
    strategy = getattr(model, "distribute_strategy", None)
    name = type(strategy).__name__ if strategy is not None else ""
    if strategy is not None and "Default" not in name:
        out["strategy"] = name
        with contextlib.suppress(Exception):
            out["replicas"] = int(strategy.num_replicas_in_sync)
        with contextlib.suppress(Exception):
            resolver = strategy.cluster_resolver
            workers = resolver.cluster_spec().as_dict().get("worker") if resolver is not None else None
            out["workers"] = len(workers) if workers else 1
            if resolver is not None and workers:
                out["worker_index"] = int(resolver.task_id)
        out.setdefault("workers", 1)
        return out
    with contextlib.suppress(Exception):
        dist = sys.modules["keras"].distribution.distribution()
        if dist is not None:
            out["strategy"] = type(dist).__name__
            mesh = getattr(dist, "device_mesh", None)
            devices = getattr(mesh, "devices", None)
            if devices is not None:
                out["replicas"] = int(getattr(devices, "size", len(devices)))
            return out
    return None


def user_callbacks(callbacks: Any) -> list[Any]:
    """The user's callbacks as a list (a CallbackList's own), none for None."""
    if callbacks is None:
        return []
    if isinstance(callbacks, list | tuple):
        return list(callbacks)
    inner = getattr(callbacks, "callbacks", None)
    return list(inner) if isinstance(inner, list) else [callbacks]


def _input_stats(x: Any, y: Any, batch_size: int | None) -> dict[str, Any] | None:
    try:
        from epochwatch.integrations.inputs import describe_inputs
    except ImportError:
        return None
    return describe_inputs(x, y, batch_size)
