"""Everything that touches TF/Keras/JAX/PyTorch internals, installed only once the user imported them.

INTEGRATIONS is the one place an integration (and an exporter, epochwatch/exporters/) is registered: (module that triggers it,
part name, install function). An install function receives the Recorder and may import
TensorFlow/Keras freely, because by then the training script already has.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

Install = Callable[["Recorder"], None]


def _call(module: str, function: str = "install", *args: Any) -> Install:
    """`epochwatch.<module>.<function>(recorder, *args)`, the module imported when first needed
    (never at the hook's import: most of them import the framework they serve)."""

    def install(recorder: Recorder) -> None:
        getattr(importlib.import_module(f"epochwatch.{module}"), function)(recorder, *args)

    return install


def patch(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> bool:
    """`owner.name = make(owner.name)`, the wrapper marked `__epochwatch__`, unless it is wrapped
    already; False when `owner` has no `name` (another version of the framework)."""
    original = getattr(owner, name, None)
    if original is None:
        return False
    if not getattr(original, "__epochwatch__", False):
        wrapped = make(original)
        wrapped.__epochwatch__ = True  # type: ignore[attr-defined]
        setattr(owner, name, wrapped)
    return True


INTEGRATIONS: list[tuple[str, str, Install]] = [
    # (trigger module, part name for error reports, install function)
    ("gc", "cleanup timing", _call("integrations.cleanups")),  # the script's gc.collect() calls
    ("tensorflow", "tensorflow integration", _call("integrations.tf")),
    ("tensorflow", "collective timing", _call("integrations.collectives")),
    ("tensorflow", "input producer clock", _call("integrations.generator_clock")),
    ("keras", "keras integration", _call("integrations.keras")),
    ("tf_keras", "tf_keras integration", _call("integrations.keras", "install", "tf_keras")),
    ("tensorflow", "saving integration", _call("integrations.saving", "install_tf")),
    ("keras", "saving integration", _call("integrations.saving", "install_keras")),
    ("tensorflow", "tf.data file watching", _call("integrations.data_files")),
    ("tensorflow", "summary writer watching", _call("integrations.summary_dirs")),
    ("tensorflow", "debugger dump watching", _call("integrations.debug_dump")),
    ("jax", "jax integration", _call("integrations.jax")),
    ("torch", "torch integration", _call("integrations.torch")),
    ("torch", "torch saving integration", _call("integrations.torch_saving")),
    ("torch", "torch profiler", _call("integrations.torch_profile")),
    # steps and epochs of loops that mark none (recorder/auto_epochs.py)
    ("keras", "automatic epochs", _call("integrations.optimizer_steps", "install_keras")),
    ("keras", "automatic epochs", _call("integrations.jit_steps", "install_keras")),
    ("tf_keras", "automatic epochs", _call("integrations.optimizer_steps", "install_tf_keras")),
    ("tensorflow", "automatic epochs", _call("integrations.data_passes", "install_tf")),
    ("tensorflow", "automatic epochs", _call("integrations.optimizer_steps", "install_tf")),
    ("keras", "automatic epochs", _call("integrations.data_passes", "install_keras")),
    ("keras", "inference calls", _call("integrations.inference")),
    ("tensorflow", "inference calls", _call("integrations.inference", "install_saved_model")),
    ("tensorflow", "inference calls", _call("integrations.inference", "install_tflite")),
    (
        "tflite_runtime",
        "inference calls",
        _call("integrations.inference", "install_tflite", "tflite_runtime.interpreter"),
    ),
    ("torch", "automatic epochs", _call("integrations.optimizer_steps", "install_torch")),
    ("torch", "automatic epochs", _call("integrations.data_passes", "install_torch")),
    ("optax", "automatic epochs", _call("integrations.optax_steps")),
    # exporters (epochwatch/exporters/): findings into the tools the script already uses
    ("tensorflow", "tensorboard export", _call("exporters.tensorboard")),
    ("wandb", "wandb export", _call("exporters.wandb")),
    ("mlflow", "mlflow export", _call("exporters.mlflow")),
]
