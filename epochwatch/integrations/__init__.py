"""Everything that touches TF/Keras/JAX/PyTorch internals, installed only once the user imported them.

INTEGRATIONS is the one place an integration (and an exporter, epochwatch/exporters/) is registered: (module that triggers it,
install function). An install function receives the Recorder and may import
TensorFlow/Keras freely, because by then the training script already has.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

Install = Callable[["Recorder"], None]


def _keras(recorder: Recorder) -> None:
    from epochwatch.integrations import keras

    keras.install(recorder)


def _tf(recorder: Recorder) -> None:
    from epochwatch.integrations import tf

    tf.install(recorder)


def _tf_keras(recorder: Recorder) -> None:
    from epochwatch.integrations import keras

    keras.install(recorder, "tf_keras")


def _collectives(recorder: Recorder) -> None:
    from epochwatch.integrations import collectives

    collectives.install(recorder)


def _jax(recorder: Recorder) -> None:
    from epochwatch.integrations import jax

    jax.install(recorder)


def _torch(recorder: Recorder) -> None:
    from epochwatch.integrations import torch

    torch.install(recorder)


def _tensorboard(recorder: Recorder) -> None:
    from epochwatch.exporters import tensorboard

    tensorboard.install(recorder)


def _wandb(recorder: Recorder) -> None:
    from epochwatch.exporters import wandb

    wandb.install(recorder)


def _mlflow(recorder: Recorder) -> None:
    from epochwatch.exporters import mlflow

    mlflow.install(recorder)


def _saving() -> Any:
    from epochwatch.integrations import saving

    return saving


INTEGRATIONS: list[tuple[str, str, Install]] = [
    # (trigger module, part name for error reports, install function)
    ("tensorflow", "tensorflow integration", _tf),
    ("tensorflow", "collective timing", _collectives),
    ("keras", "keras integration", _keras),
    ("tf_keras", "tf_keras integration", _tf_keras),
    ("tensorflow", "saving integration", lambda rec: _saving().install_tf(rec)),
    ("keras", "saving integration", lambda rec: _saving().install_keras(rec)),
    ("jax", "jax integration", _jax),
    ("torch", "torch integration", _torch),
    ("torch", "torch saving integration", lambda rec: _torch_saving().install(rec)),
    # steps and epochs of loops that mark none (recorder/auto_epochs.py)
    ("keras", "automatic epochs", lambda rec: _shapes("optimizer_steps").install_keras(rec)),
    ("tf_keras", "automatic epochs", lambda rec: _shapes("optimizer_steps").install_tf_keras(rec)),
    ("tensorflow", "automatic epochs", lambda rec: _shapes("optimizer_steps").install_tf(rec)),
    ("tensorflow", "automatic epochs", lambda rec: _shapes("data_passes").install_tf(rec)),
    ("keras", "automatic epochs", lambda rec: _shapes("data_passes").install_keras(rec)),
    ("keras", "inference calls", lambda rec: _shapes("inference").install(rec)),
    ("torch", "automatic epochs", lambda rec: _shapes("optimizer_steps").install_torch(rec)),
    ("torch", "automatic epochs", lambda rec: _shapes("data_passes").install_torch(rec)),
    # exporters (epochwatch/exporters/): findings into the tools the script already uses
    ("tensorflow", "tensorboard export", _tensorboard),
    ("wandb", "wandb export", _wandb),
    ("mlflow", "mlflow export", _mlflow),
]


def _torch_saving() -> Any:
    from epochwatch.integrations import torch_saving

    return torch_saving


def _shapes(name: str) -> Any:
    """integrations/optimizer_steps.py or data_passes.py, imported when first needed."""
    import importlib

    return importlib.import_module(f"epochwatch.integrations.{name}")
