"""Keras 3 (`keras` and `tf.keras`) and legacy Keras 2 (`tf_keras`, what `tf.keras` is under
`TF_USE_LEGACY_KERAS=1`): every `Model.fit` gets one more callback.

The callback overrides only begin/end hooks that Keras always calls synchronously:
overriding any `*_batch_end` would switch off Keras 3's asynchronous callback dispatch
(`CallbackList._configure_async_dispatch`) and slow training. Steps are timed from
`on_train_batch_begin`, which costs a clock read and a list append, and never touches
tensors, so it adds no device synchronisation. The user's callbacks' own epoch-end time
is measured by small clocks placed before each of them in the list (each also only
overrides on_epoch_end): one clock read per callback per epoch.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import threading
import time
from typing import TYPE_CHECKING, Any

from epochwatch.integrations.footprint import hook_bytes
from epochwatch.integrations.keras_fit import (
    activate_input,
    fit_batch_size,
    fit_block,
    input_probe,
    install_input_timing,
)
from epochwatch.integrations.keras_reads import RateReader, StepCounter, number

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
    callback_cls = _callback_class(keras.callbacks.Callback, recorder, input_timing=not legacy)
    if not legacy:  # input timing hooks Keras 3's data adapters
        recorder.guard.run("input timing", lambda: install_input_timing(recorder), None)
    step_cost = _calibrate_step_cost(callback_cls)
    local = threading.local()

    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(local, "depth", 0) or not recorder.guard.enabled("keras integration"):
            return original(self, *args, **kwargs)
        prepared = recorder.guard.run(
            "keras integration",
            lambda: _prepare(recorder, signature, callback_cls, step_cost, self, args, kwargs),
            None,
        )
        if prepared is None:
            return original(self, *args, **kwargs)
        call_args, call_kwargs, callback = prepared
        local.depth = 1
        try:
            history = original(*call_args, **call_kwargs)
        except BaseException as exc:
            failure = exc
            recorder.guard.run("keras integration", lambda: callback.fit_finished(failure), None)
            raise
        finally:
            local.depth = 0
        recorder.guard.run("keras integration", lambda: callback.fit_finished(None), None)
        return history

    fit.__epochwatch__ = True  # type: ignore[attr-defined]
    model_cls.fit = fit
    _count_clear_session(keras, recorder)


def _count_clear_session(keras: Any, recorder: Recorder) -> None:
    """Count keras.backend.clear_session() calls (also through keras.utils): a loop that
    builds models and already clears the session needs other advice (models_in_loop)."""
    for module in (getattr(keras, "backend", None), getattr(keras, "utils", None)):
        original = getattr(module, "clear_session", None)
        if original is None or getattr(original, "__epochwatch__", False):
            continue

        def clear_session(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            recorder.clear_session_calls += 1
            return __original(*args, **kwargs)

        functools.update_wrapper(clear_session, original)
        clear_session.__epochwatch__ = True  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            module.clear_session = clear_session  # type: ignore[union-attr]


def _own_rss() -> int | None:
    try:
        from epochwatch.samplers.host import own_rss_bytes
    except ImportError:
        return None
    return own_rss_bytes()


def _prepare(
    recorder: Recorder,
    signature: inspect.Signature,
    callback_cls: type,
    step_cost: float,
    model: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[tuple[Any, ...], dict[str, Any], Any] | None:
    """Bind fit's arguments and add our callback; None leaves the call untouched."""
    t0 = time.perf_counter()
    try:
        bound = signature.bind(model, *args, **kwargs)
    except TypeError:
        return None  # let Keras raise its own error for a bad call
    arguments = bound.arguments
    user_callbacks = arguments.get("callbacks")
    callback = callback_cls(arguments, step_cost)
    if user_callbacks is None:
        arguments["callbacks"] = [callback]
    elif isinstance(user_callbacks, list | tuple) and len(user_callbacks) <= MAX_CLOCKED:
        arguments["callbacks"] = [*callback.clocked(list(user_callbacks)), callback]
    elif isinstance(user_callbacks, list | tuple):
        arguments["callbacks"] = [*user_callbacks, callback]
    elif hasattr(user_callbacks, "callbacks") and isinstance(user_callbacks.callbacks, list):
        # A CallbackList the caller built: join it, configured the way it configures its own.
        user_callbacks.callbacks.append(callback)
        callback.set_model(model)
        if getattr(user_callbacks, "params", None):
            callback.set_params(user_callbacks.params)
    else:
        arguments["callbacks"] = [user_callbacks, callback]
    recorder.add_overhead(time.perf_counter() - t0)
    return bound.args, bound.kwargs, callback


def _calibrate_step_cost(callback_cls: type) -> float:
    """What one on_train_batch_begin costs us, so overhead_seconds can include steps without
    timing each one (a clock read per step to time a clock read would double the cost)."""
    probe = callback_cls({}, 0.0)
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        probe.on_train_batch_begin(i)
    return (time.perf_counter() - t0) / n


def _callback_class(base: type, recorder: Recorder, input_timing: bool = True) -> type:
    clock = recorder.clock

    class EpochwatchClock(base):
        """Placed before a user callback: notes when that callback's on_epoch_end starts."""

        def __init__(self, marks: list[tuple[int, float]], slot: int) -> None:
            super().__init__()
            self._marks = marks
            self._slot = slot

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self._marks.append((self._slot, time.perf_counter()))

    class EpochwatchCallback(base):
        """Feeds the Recorder from one fit; created per fit call."""

        def __init__(self, fit_arguments: dict[str, Any], step_cost: float) -> None:
            super().__init__()
            self._arguments = fit_arguments
            self._batch_size = fit_batch_size(fit_arguments)  # fixed for the fit: read once, not per epoch
            self._step_cost = step_cost
            self._fit: int | None = None
            self._step_starts: list[float] = []
            self._val_start: float | None = None
            self._val_seconds = 0.0
            self._train_end: float | None = None
            self._epochs_completed = 0
            self._fit_start = time.perf_counter()
            self._epoch_start = self._fit_start
            self._input = input_probe(recorder, fit_arguments.get("x")) if input_timing else None
            self._marks: list[tuple[int, float]] = []
            self._clocked: list[str] = []  # class name of the callback after each clock
            self._rate = RateReader()
            self._steps = StepCounter()
            self._per_call: int | None = None

        def clocked(self, callbacks: list[Any]) -> list[Any]:
            """The user's callbacks, each preceded by a clock that times its on_epoch_end."""
            out: list[Any] = []
            for cb in callbacks:
                out.append(EpochwatchClock(self._marks, len(self._clocked)))
                self._clocked.append(type(cb).__name__[:120])
                out.append(cb)
            return out

        def _callback_times(self, end: float) -> dict[str, Any] | None:
            """{"seconds": total, "by_class": {name: seconds}} for this epoch's on_epoch_end calls."""
            marks = self._marks
            if not marks or not self._clocked:
                return None
            by_class: dict[str, float] = {}
            for n, (slot, t) in enumerate(marks):
                until = marks[n + 1][1] if n + 1 < len(marks) else end
                name = self._clocked[slot] if 0 <= slot < len(self._clocked) else "?"
                by_class[name] = by_class.get(name, 0.0) + max(0.0, until - t)
            return {
                "seconds": round(max(0.0, end - marks[0][1]), 6),
                "by_class": {k: round(v, 6) for k, v in by_class.items()},
            }

        # -- fit ---------------------------------------------------------------------

        def on_train_begin(self, logs: Any = None) -> None:
            t0 = time.perf_counter()
            setup = 0.0

            def begin() -> None:
                nonlocal setup
                self._fit = recorder.next_fit_index()
                block = fit_block(self, self._fit, recorder)
                t_start = time.perf_counter()
                recorder.start(training=block)
                setup = time.perf_counter() - t_start  # the run's set-up: run_start accounts for it
                recorder.emit("fit_start", **block)
                for path, role in block.get("watched", {}).items():
                    recorder.watch(path, role)

            recorder.guard.run("keras integration", begin, None)
            activate_input(self._input)
            recorder.add_overhead(time.perf_counter() - t0 - setup)

        def fit_finished(self, exc: BaseException | None) -> None:
            # The bound arguments hold the fit's arrays and its callback list, which holds this
            # callback: a reference cycle that kept every fit's x and y alive until a full
            # garbage collection (6 MiB per fit on fresh 12.8 MB arrays, bench/fit_footprint.py).
            self._arguments = {}
            if self._input is not None:
                activate_input(None)
                self._input.close()
                self._input = None
            if recorder.in_epoch:
                recorder.abandon_epoch("keras")
            if self._fit is None:
                return
            fields: dict[str, Any] = {
                "fit": self._fit,
                "epochs_completed": self._epochs_completed,
                "seconds": round(time.perf_counter() - self._fit_start, 6),
            }
            rss = _own_rss()
            if rss is not None:
                fields["rss_bytes"] = rss  # the memory floor after each fit (models_in_loop)
            fields["hook_bytes"] = hook_bytes(recorder)  # ... of which the hook's own (an estimate)
            if exc is None:
                fields["ended"] = "completed"
            elif isinstance(exc, KeyboardInterrupt):
                fields["ended"] = "interrupted"
            else:
                fields["ended"] = "raised"
                fields["exception"] = type(exc).__name__
            recorder.emit("fit_end", **fields)
            if recorder.per_fit_runs:  # a notebook: the fit was the run; the kernel lives on
                recorder.finish(fields["ended"], reopen=True)

        # -- epochs ------------------------------------------------------------------

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._step_starts = []
            self._marks.clear()
            self._val_start = None
            self._val_seconds = 0.0
            self._train_end = None
            recorder.guard.run(
                "keras integration", lambda: recorder.begin_epoch(epoch, "keras", self._fit), None
            )
            self._epoch_start = time.perf_counter()
            if self._input is not None:
                self._input.begin_epoch(self._epoch_start)

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            starts = self._step_starts
            starts.append(now)
            if now >= clock.due:  # a sub-epoch interval is due (a few times per epoch at most)
                recorder.interval(starts, now)

        def on_test_begin(self, logs: Any = None) -> None:
            now = time.perf_counter()
            if self._train_end is None:
                self._train_end = now
                if self._input is not None:
                    self._input.end_training()
            self._val_start = now

        def on_test_end(self, logs: Any = None) -> None:
            if self._val_start is not None:
                self._val_seconds += time.perf_counter() - self._val_start
                self._val_start = None

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            end = time.perf_counter()
            t0 = end
            fields = recorder.guard.run("keras integration", lambda: self._epoch_fields(logs, end), None)
            recorder.add_overhead(len(self._step_starts) * self._step_cost + (time.perf_counter() - t0))
            recorder.guard.run(
                "keras integration", lambda: recorder.end_epoch(fields or {}, end_perf=end), None
            )
            self._epochs_completed += 1

        def _epoch_fields(self, logs: Any, end: float) -> dict[str, Any]:
            fields: dict[str, Any] = {}
            # A plain int in Keras 3, a (mirrored) tf.Variable in tf_keras: fixed for a fit,
            # so read once (a variable read costs 0.1-0.2 ms in a training process).
            if self._per_call is None:
                self._per_call = max(
                    1, int(number(lambda: getattr(self.model, "steps_per_execution", 1)) or 1)
                )
            per_call = self._per_call
            calls = len(self._step_starts)
            steps = calls * per_call
            total = (self.params or {}).get("steps")
            if isinstance(total, int) and total > 0:
                steps = min(steps, total)
            fields["steps"] = steps
            # Training ends at validation or, without it, when the first callback's on_epoch_end
            # starts: the callbacks' own time is neither a step nor a wait for input.
            train_end = self._train_end or (self._marks[0][1] if self._marks else end)
            if calls:
                spread = _step_spread(self._step_starts, train_end, per_call)
                if spread:
                    fields["step_seconds"] = spread
            if self._val_seconds:
                fields["val_seconds"] = round(self._val_seconds, 6)
            callbacks = self._callback_times(end)
            if callbacks:
                fields["callbacks"] = callbacks
            metrics = {}
            for key, value in (logs or {}).items():
                try:
                    metrics[key] = float(value)
                except (TypeError, ValueError):
                    continue
            if metrics:
                fields["metrics"] = metrics
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None:
                lr = self._rate.read(optimizer, max(0.0, train_end - self._epoch_start))
                if lr is not None:
                    fields["lr"] = lr
                iterations = self._steps.read(optimizer, steps, max(0.0, train_end - self._epoch_start))
                if iterations is not None:
                    fields["iterations"] = iterations
            if self._batch_size is not None:
                fields["batch_size"] = self._batch_size
            if steps and train_end > self._epoch_start:
                fields["steps_per_second"] = round(steps / (train_end - self._epoch_start), 3)
            probe = self._input
            if probe is not None:
                first = self._step_starts[0] if self._step_starts else None
                last = self._step_starts[-1] if self._step_starts else None
                wait = recorder.guard.run(
                    "input timing", lambda: probe.epoch_fields(train_end, steps, last, first), None
                )
                if wait:
                    fields.update(wait)
            return fields

    return EpochwatchCallback


def _step_spread(starts: list[float], train_end: float, per_call: int) -> dict[str, float] | None:
    durations = [b - a for a, b in itertools.pairwise(starts)]
    durations.append(max(0.0, train_end - starts[-1]))
    durations = sorted(d / per_call for d in durations)
    n = len(durations)
    if not n:
        return None
    return {
        "min": round(durations[0], 7),
        "median": round(durations[n // 2], 7),
        "p90": round(durations[min(n - 1, int(n * 0.9))], 7),
        "max": round(durations[-1], 7),
    }
