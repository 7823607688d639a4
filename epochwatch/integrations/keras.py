"""Keras 3 (`keras` and `tf.keras`) and legacy Keras 2 (`tf_keras`, what `tf.keras` is under
`TF_USE_LEGACY_KERAS=1`): every `Model.fit` gets one more callback.

The callback is Keras' own `LambdaCallback`, calling a `FitWatch` (integrations/
keras_callback.py: one per fit, holding what that fit is). It sets only begin/end
hooks that Keras always calls synchronously: setting any `*_batch_end` would switch off
Keras 3's asynchronous callback dispatch (`CallbackList._configure_async_dispatch`) and
slow training. Steps are timed from `on_train_batch_begin`, which costs a clock read and a
list append, and never touches tensors, so it adds no device synchronisation. The user's
callbacks' own epoch-end time is measured by small clocks placed before each of them in
the list (each also only sets on_epoch_end): one clock read per callback per epoch.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from epochwatch.integrations import cleanups, input_wait
from epochwatch.integrations.keras_callback import FitWatch, keras_callback
from epochwatch.integrations.keras_fit import ModelLoop

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

MAX_CLOCKED = 32  # callbacks timed one by one; longer lists are left as they are


def install(recorder: Recorder, module_name: str = "keras") -> None:
    import importlib

    keras = importlib.import_module(module_name)
    legacy = module_name != "keras"  # tf_keras: Keras 2, TensorFlow only, no Keras 3 internals
    if not legacy:
        recorder.add_fingerprint_source("keras_backend", keras.backend.backend)
    model_cls = keras.Model
    original = model_cls.fit
    if getattr(original, "__epochwatch__", False):
        return
    signature = inspect.signature(original)
    loop = ModelLoop()
    if not legacy:  # input timing hooks Keras 3's data adapters

        def report(part: str, exc: Exception) -> None:
            recorder.guard.disable(part, f"{type(exc).__name__}: {exc}")

        recorder.guard.run("input timing", lambda: input_wait.install(report), None)
    step_cost = _calibrate_step_cost(recorder, loop)
    local = threading.local()

    def prepare(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            bound = signature.bind(model, *args, **kwargs)
        except TypeError:
            return None  # let Keras raise its own error for a bad call
        watch = FitWatch(recorder, loop, bound.arguments, step_cost, input_timing=not legacy)
        _add_callback(keras.callbacks, watch, model)
        return bound.args, bound.kwargs, watch

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(local, "depth", 0) or not recorder.guard.enabled("keras integration"):
            return original(self, *args, **kwargs)
        t0 = time.perf_counter()
        prepared = recorder.guard.run("keras integration", lambda: prepare(self, args, kwargs), None)
        recorder.add_overhead(time.perf_counter() - t0)
        if prepared is None:
            return original(self, *args, **kwargs)
        call_args, call_kwargs, watch = prepared
        local.depth = 1
        inference = recorder.auto.inference  # the fit's predict/evaluate calls are its own
        recorder.guard.run("inference calls", inference.fit_began, None)
        try:
            history = original(*call_args, **call_kwargs)
        except BaseException as exc:
            recorder.guard.run("keras integration", functools.partial(_fit_failed, watch, self, exc), None)
            raise
        finally:
            local.depth = 0
            recorder.guard.run("inference calls", inference.fit_ended, None)
        recorder.guard.run("keras integration", lambda: watch.fit_finished(None), None)
        return history

    fit.__epochwatch__ = True  # type: ignore[attr-defined]
    model_cls.fit = fit
    count_clear_sessions(recorder, keras, loop)


def count_clear_sessions(recorder: Recorder, keras: Any, loop: ModelLoop) -> None:
    """Count the script's clear_session() calls into `loop`, for Keras fits' fit_start
    (keras_fit.fit_block) and a custom loop's (recorder/auto_epochs.py writes it, with what
    `fit_facts` add): models_in_loop's advice moves on where the loop already clears the
    session, in a loop of fits and in a loop of GradientTape steps alike."""
    recorder.guard.run("clear_session counting", lambda: _count_clear_session(recorder, keras, loop), None)
    recorder.auto.fit_facts[keras.__name__] = lambda: {"clear_session_calls": loop.clear_session_calls}


def _fit_failed(watch: FitWatch, model: Any, exc: BaseException) -> None:
    """The fit raised. One that raised before it began (a bad argument, data of the wrong
    shape: Keras checks those before its callbacks run) is still written, with the run's
    start when it was the first: its `fit_start`, then its `fit_end` saying what it raised."""
    if watch.fit is None and watch.callback is not None:
        if getattr(watch.callback, "model", None) is None:
            watch.callback.set_model(model)
        watch.on_train_begin()
    watch.fit_finished(exc)


def _count_clear_session(recorder: Recorder, keras: Any, loop: ModelLoop) -> None:
    """Count clear_session() calls through every name that reaches it (`keras.backend`,
    `keras.utils`, `tf.keras.backend`, `tf.compat.v1.keras.backend`, the module defining
    it): a loop that builds models and already clears the session needs other advice
    (models_in_loop). Every module of the package holding the function gets the one
    wrapper, so the aliases stay one function; modules imported later take it from there."""
    original = getattr(getattr(keras, "backend", None), "clear_session", None)
    if original is None or getattr(original, "__epochwatch__", False):
        return

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        loop.clear_session_calls += 1
        return original(*args, **kwargs)

    clear_session = cleanups.of(recorder).timed("clear_session", counted)  # and timed
    package = keras.__name__.partition(".")[0]
    # Copies, made in one step each: another thread (the hook's warm-up) may import meanwhile.
    for name, module in sys.modules.copy().items():
        if name.partition(".")[0] != package:
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in namespace.copy().items():
            if value is original:
                with contextlib.suppress(Exception):
                    setattr(module, attr, clear_session)


def _add_callback(callbacks: Any, watch: FitWatch, model: Any) -> None:
    """Add the fit's callback to its arguments, the user's callbacks each behind a clock."""
    arguments = watch.arguments
    given = arguments.get("callbacks")
    callback = keras_callback(callbacks, watch)
    if given is None:
        arguments["callbacks"] = [callback]
    elif isinstance(given, list | tuple) and len(given) <= MAX_CLOCKED:
        arguments["callbacks"] = [*watch.clocked(callbacks, list(given)), callback]
    elif isinstance(given, list | tuple):
        arguments["callbacks"] = [*given, callback]
    elif hasattr(given, "callbacks") and isinstance(given.callbacks, list):
        # A CallbackList the caller built: join it, configured the way it configures its own.
        given.callbacks.append(callback)
        callback.set_model(model)
        if getattr(given, "params", None):
            callback.set_params(given.params)
    else:
        arguments["callbacks"] = [given, callback]


def _calibrate_step_cost(recorder: Recorder, loop: ModelLoop) -> float:
    """What one on_train_batch_begin costs us, so overhead_seconds can include steps without
    timing each one (a clock read per step to time a clock read would double the cost)."""
    probe = FitWatch(recorder, loop, {}, 0.0)
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        probe.on_train_batch_begin(i)
    return (time.perf_counter() - t0) / n
