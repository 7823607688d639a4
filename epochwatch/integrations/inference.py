"""Keras inference calls outside training: `predict`, `predict_on_batch`, `evaluate`, and
calling the model (`keras.Model.__call__`, the outermost call only).

Each call is timed and handed to `recorder.auto.inference` (recorder/inference_calls.py),
which traces a loop of them as an inference run when nothing trains. Once per call (a
call is milliseconds at least): two clock reads and a guarded method call. Once training
is seen, one attribute read per call (a training loop calls its model every step).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "inference calls"
APIS = ("predict", "predict_on_batch", "evaluate", "__call__")


def wrap_call(original: Callable[..., Any], api: str, recorder: Recorder) -> Callable[..., Any]:
    inference, guard = recorder.auto.inference, recorder.guard

    @functools.wraps(original)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if inference.training_seen or inference.depth:  # training, or inside predict's own calls
            return original(self, *args, **kwargs)
        inference.depth += 1
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            seconds = time.perf_counter() - t0
            inference.depth -= 1
            guard.run(PART, lambda: inference.called(api, seconds), None)

    call.__epochwatch__ = True  # type: ignore[attr-defined]
    return call


def install(recorder: Recorder) -> None:
    """Wrap the inference methods of `keras.Model` (Keras 3)."""
    import keras

    model_cls = keras.Model
    for api in APIS:
        original = getattr(model_cls, api, None)
        if original is not None and not getattr(original, "__epochwatch__", False):
            setattr(model_cls, api, wrap_call(original, api, recorder))
