"""Keras inference calls outside training: `predict`, `predict_on_batch`, `evaluate`, and
calling the model (`keras.Model.__call__`, the outermost call only).

Each call is timed and handed to `recorder.auto.inference` (recorder/inference_calls.py),
which traces a loop of them as an inference run when nothing trains (or after a Keras
fit ended). Once per call (a call is milliseconds at least): two clock reads and a
guarded method call. While a fit runs or once a custom loop trained, three attribute
reads per call (a training loop calls its model every step).

A model called while JAX traces (inside a `jax.jit` function) is no call either.

A model called while a `tf.function` is traced (`@tf.function def predict_step(x):
return model(x)`, the usual fast inference loop) runs its Python only at the trace: that
call is no inference call, and the function becomes a watched one whose own calls are
(integrations/optimizer_steps.py: `watcher`, the same class as the step functions).

Once a custom loop trained, `predict`/`evaluate`/`predict_on_batch` calls are still timed
(milliseconds each at least, so two clock reads and a shape read cost nothing) and counted
into the loop's epoch (`inference.in_loop`); its model calls are not (one a step).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch.integrations import patch
from epochwatch.recorder.inference_calls import LOOP_APIS

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "inference calls"
# What a call was fed is described as a part of its own: a failure there leaves the calls counted.
INPUTS_PART = "served inputs"
APIS = ("predict", "predict_on_batch", "evaluate", "__call__")


def _first(x: Any) -> Any:
    """The first input of a list or dict of them, or `x` itself."""
    if isinstance(x, list | tuple) and x:
        return x[0]
    return next(iter(x.values())) if isinstance(x, dict) and x else x


def _symbolic(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """A call on Keras' symbolic tensors builds a functional model (pix2pix calls its
    generator on `keras.Input`s): no inference call, and nothing to describe."""
    x = args[0] if args else kwargs.get("inputs", kwargs.get("x"))
    return type(_first(x)).__name__ == "KerasTensor"


def _never() -> bool:
    return False


def _rows(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The rows a call was fed (the first dimension of its first input), when its input has
    a shape (arrays, tensors, a list or dict of them); None for a dataset or a generator."""
    shape = getattr(_first(args[0] if args else kwargs.get("x")), "shape", None)
    try:
        rows = shape[0] if shape is not None and len(shape) else None
    except (TypeError, ValueError, IndexError):
        return None
    return rows if isinstance(rows, int) and not isinstance(rows, bool) else None


def _describe(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The statistics of a call's inputs (`x` of predict/evaluate, `inputs` of a call)."""
    from epochwatch.integrations.inputs import describe_inputs

    x = args[0] if args else kwargs.get("x", kwargs.get("inputs"))
    return describe_inputs(x) if x is not None else None


def wrap_call(
    original: Callable[..., Any],
    api: str,
    recorder: Recorder,
    tracing: Callable[[], bool] = _never,
    watch: Callable[[], None] | None = None,
) -> Callable[..., Any]:
    """`original` timed as an inference call; while `tracing()`, `watch()` marks the function
    being traced instead (outside a fit: a fit's functions are its own)."""
    inference, guard = recorder.auto.inference, recorder.guard
    counted_in_loop = api in LOOP_APIS

    def timed(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any], done: Callable[[float], None]) -> Any:
        """The call, its own calls not counted (`depth`), its seconds then given to `done`."""
        inference.depth += 1
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            seconds = time.perf_counter() - t0
            inference.depth -= 1
            guard.run(PART, lambda: done(seconds), None)

    @functools.wraps(original)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if inference.blind or inference.fitting or inference.depth or _symbolic(args, kwargs):
            if counted_in_loop and inference.blind and not (inference.fitting or inference.depth):
                # A Keras inference loop called inside a custom loop: timed into its epoch.
                return timed(self, args, kwargs, lambda s: inference.in_loop(api, s, _rows(args, kwargs)))
            return original(self, *args, **kwargs)  # training, predict's own calls, or a model being built
        if tracing():
            if watch is not None and recorder.epoch_source is None:
                guard.run(PART, watch, None)
            return original(self, *args, **kwargs)
        try:
            rows = _rows(args, kwargs) if counted_in_loop else None
            return timed(self, args, kwargs, lambda s: inference.called(api, s, rows))
        finally:
            if inference.wants_inputs():  # after the call, off its clock: what it was fed
                guard.run(INPUTS_PART, lambda: inference.described(_describe(args, kwargs)), None)

    call.__epochwatch__ = True  # type: ignore[attr-defined]
    return call


def _jax_tracing() -> Callable[[], bool]:
    """Whether JAX is tracing (a model called inside a `jax.jit` function's trace, such as
    Keras' own train function that `train_on_batch` calls: no inference call, and inputs
    that are tracers, which no statistic may read); never, where JAX has no such check."""
    try:
        from jax._src import core

        top_level = core.trace_ctx.is_top_level
    except (ImportError, AttributeError):
        return _never
    return lambda: not top_level()


def install(recorder: Recorder) -> None:
    """Wrap the inference methods of `keras.Model` (Keras 3)."""
    import keras

    tracing, watch = _never, None
    if keras.backend.backend() == "tensorflow":
        from tensorflow.python.eager import context

        from epochwatch.integrations.optimizer_steps import tf_functions

        tracing, watch = (lambda: not context.executing_eagerly()), tf_functions(recorder)[1]
    elif keras.backend.backend() == "jax":
        tracing = _jax_tracing()
    wrap = functools.partial(wrap_call, recorder=recorder, tracing=tracing, watch=watch)
    for api in APIS:
        patch(keras.Model, api, functools.partial(wrap, api=api))


# A loaded SavedModel's callables: TF's own serving loop, with no Keras model to call.
SAVED_MODEL_APIS = (
    ("function_deserialization", "RestoredFunction", "SavedModel function"),  # loaded.serve(x)
    ("load", "_WrapperFunction", "SavedModel signature"),  # loaded.signatures["serving_default"](x)
)


def install_saved_model(recorder: Recorder) -> None:
    """Time the calls of what `tf.saved_model.load` returns (tensorflow#40171's serving loop
    had no epochs and no windows: nothing to judge its memory on). Only loaded functions
    are of these classes, so nothing else pays for it; a call inside a traced function is
    part of that function, not a call of its own."""
    import importlib

    from tensorflow.python.eager import context

    tracing = lambda: not context.executing_eagerly()  # noqa: E731
    for module, name, api in SAVED_MODEL_APIS:
        cls = getattr(importlib.import_module(f"tensorflow.python.saved_model.{module}"), name, None)
        if isinstance(cls, type):
            patch(cls, "__call__", functools.partial(wrap_call, api=api, recorder=recorder, tracing=tracing))


def install_tflite(recorder: Recorder, module: str = "tensorflow.lite.python.interpreter") -> None:
    """Time `Interpreter.invoke` of TF Lite (`tf.lite.Interpreter`, imported with TF, or
    `tflite_runtime.interpreter`'s): a TF Lite serving loop calls no Keras model and no
    tf.function. Its inputs are set beforehand (`set_tensor`), so none are described."""
    import importlib

    cls: Any = getattr(importlib.import_module(module), "Interpreter", None)
    if cls is not None:
        patch(cls, "invoke", functools.partial(wrap_call, api="TFLite invoke", recorder=recorder))
