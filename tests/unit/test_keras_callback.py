"""The Keras callback's per-fit logic (`FitWatch`) driven directly, as Keras drives it,
without Keras: what one fit of three steps an epoch writes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from epochwatch.integrations.keras_callback import FitWatch
from epochwatch.integrations.keras_fit import ModelLoop, loss_name
from epochwatch.recorder import Recorder
from epochwatch.trace.reader import iter_records


class _Model:
    """A model object as the hook sees one: it takes the hook's serial."""


class _Callback:
    """What FitWatch reads of the Keras callback calling it: the model and fit's params."""

    model = _Model()
    params = {"epochs": 2, "steps": 3}  # noqa: RUF012


@pytest.fixture
def recorder(tmp_path: Path) -> Any:
    rec = Recorder(
        {"EPOCHWATCH_DIR": str(tmp_path / "traces"), "EPOCHWATCH_SOCKET": str(tmp_path / "none.sock")}
    )
    yield rec
    rec.finish("completed")


def test_one_fit_driven_as_keras_drives_it(recorder: Recorder, tmp_path: Path) -> None:
    loop = ModelLoop()
    loop.clear_session_calls = 2
    watch = FitWatch(recorder, loop, {"batch_size": 16, "epochs": 2}, 0.0)
    watch.callback = _Callback()
    watch.on_train_begin()
    for epoch in range(2):
        watch.on_epoch_begin(epoch)
        for step in range(3):
            watch.on_train_batch_begin(step)
            time.sleep(0.002)
        watch.on_test_begin()
        watch.on_test_end()
        watch.on_epoch_end(epoch, {"loss": 0.5 - epoch / 10, "note": "not a number"})
    watch.fit_finished(None)
    recorder.finish("completed")
    (trace,) = (tmp_path / "traces").glob("*.jsonl")
    records = list(iter_records(trace))
    (start,) = [r for r in records if r["type"] == "fit_start"]
    assert start["fit"] == 0 and start["batch_size"] == 16 and start["epochs"] == 2
    assert start["clear_session_calls"] == 2 and start["steps_per_epoch"] == 3
    assert isinstance(start["model"]["serial"], int)
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [(e["fit"], e["epoch"], e["steps"]) for e in epochs] == [(0, 0, 3), (0, 1, 3)]
    assert [e["metrics"] for e in epochs] == [{"loss": 0.5}, {"loss": 0.4}]
    assert all(e["step_seconds"]["min"] >= 0.0015 and e["batch_size"] == 16 for e in epochs)
    (end,) = [r for r in records if r["type"] == "fit_end"]
    assert end["ended"] == "completed" and end["epochs_completed"] == 2


class _Wrapper:  # a Keras loss object: its name, its repr full of addresses
    name = "binary_crossentropy"

    def __repr__(self) -> str:
        return "<LossFunctionWrapper(<function binary_crossentropy at 0x7f90>, kwargs={})>"


def test_a_multi_output_models_losses_are_named_not_printed() -> None:
    # keras-io#500's ticket model: the header printed "loss {'priority': <LossFunctionWrapper(
    # <function binary_crossentropy at 0x7f90...>, ...)>, ...}".
    assert loss_name({"priority": _Wrapper(), "tags": "categorical_crossentropy"}) == (
        "priority: binary_crossentropy, tags: categorical_crossentropy"
    )
    assert loss_name(["mse", _Wrapper()]) == "mse, binary_crossentropy"
    assert loss_name("mse") == "mse"
    assert loss_name(lambda y, p: p) == "<lambda>"
