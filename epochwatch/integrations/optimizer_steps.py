"""Optimizer updates as steps, for loops that call no `hook.step()` (recorder/auto_epochs.py).

Every training step ends in an optimizer update, whatever the loop looks like, so the
update is where steps are seen without help:

- Keras 3: `BaseOptimizer.apply` (which `apply_gradients` and every Keras optimizer use);
  tf_keras: `apply_gradients` of its optimizers.
- A step inside a `@tf.function` runs the update's Python only while the function is
  traced. An update traced outside a fit walks the stack (trace time only) to the
  outermost `tf.function` being called and gives it the class `StepFunction` (a subclass,
  the same layout) whose calls are steps of that optimizer. The call that traced it counts
  at the trace; retraces add nothing. Every other `tf.function`, a Keras fit's train
  function included, is left as it is: no wrapper, no cost per call.
- A loop with no optimizer (variables updated by hand): `GradientTape.gradient`, counted
  and marked the same way for `TAPE` (recorder/auto_epochs.py), until an optimizer is seen.
- PyTorch (`torch.optim.optimizer.register_optimizer_step_post_hook`): one global hook.
- optax (integrations/optax_steps.py): `apply_updates`, and jitted functions that call it;
  Keras on JAX: `apply` traced inside a `jax.jit` function marks it the same way
  (integrations/jit_steps.py: `install_keras`).

Per step on the training thread: an eager check and a method call, well under a
microsecond (bench/primitives.py measures it). Steps inside a Keras fit are the fit's and
are dropped in `AutoEpochs.step` (one compare). Inside the script's own `hook.epoch()`
they are that epoch's steps unless it calls `hook.step()` (recorder/auto_epochs.py).
"""

from __future__ import annotations

import functools
import inspect
import sys
import threading
import weakref
from collections.abc import Callable
from time import perf_counter
from types import CodeType, FrameType
from typing import TYPE_CHECKING, Any

from epochwatch.integrations import eager
from epochwatch.recorder.auto_epochs import TAPE

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "automatic epochs"
_MARKED = (None, "auto", "loop")  # epochs whose traced updates mark a step function (not a fit's)
_OWNER = "_epochwatch_step_owner"  # set on a tf.function that updates an optimizer


def counter(recorder: Recorder) -> Callable[[Any], None]:
    """`count(optimizer)`: one step. `AutoEpochs.step` itself, bound (a wrapper around it
    would double the cost); the wraps call it inside `try` and hand a failure to `failed`."""
    return recorder.auto.step


def failed(recorder: Recorder, exc: Exception) -> None:
    """A step could not be counted: automatic epochs switch off, training goes on."""
    recorder.auto.broken = True  # no steps counted in any epoch
    recorder.auto.stop()
    recorder.guard.disable(PART, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])


def wrap_update(
    original: Callable[..., Any],
    recorder: Recorder,
    eager: Callable[[], bool] = lambda: True,
    mark: Callable[[Any], Any] | None = None,
    owner: Any = None,
) -> Callable[..., Any]:
    """An update (`original(self, ...)`) that counts an eager step of `owner` (default: the
    optimizer, `self`), or while a function is traced outside a fit, `mark(self)`s it a step
    function and counts the call being traced for what `mark` returns (None: marked before)."""
    count = counter(recorder)
    auto = recorder.auto

    @functools.wraps(original)
    def update(self: Any, *args: Any, **kwargs: Any) -> Any:
        if owner is None and auto.new_to(self):  # what it updates tells a new model from a new optimizer
            auto.updating, auto.updated = updated_variables(args, kwargs)
        if eager():
            try:
                count(owner or self)
            except Exception as exc:
                failed(recorder, exc)
        elif mark is not None and not recorder.auto.broken and recorder.epoch_source in _MARKED:
            try:  # a fit's train function stays unmarked: its steps are the fit's
                marked = mark(owner or self)
                if marked is not None:
                    recorder.auto.at_begin = 1  # its calls count as they begin
                    count(marked)
            except Exception as exc:
                failed(recorder, exc)
        return original(self, *args, **kwargs)

    update.__epochwatch__ = True  # type: ignore[attr-defined]
    return update


def updated_variables(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[frozenset[int] | None, tuple[weakref.ref[Any], ...]]:
    """The ids of the variables an update's arguments name, and weak references to a few of
    them: Keras 3's `apply(grads, trainable_variables)`, or `apply_gradients(grads_and_vars)`
    where that is a list (a `zip` is the user's iterator: reading it would take the update's
    pairs away)."""
    variables = kwargs.get("trainable_variables", args[1] if len(args) > 1 else None)
    if variables is None:
        pairs = kwargs.get("grads_and_vars", args[0] if args else None)
        if not isinstance(pairs, list | tuple):
            return None, ()
        variables = [p[1] for p in pairs if isinstance(p, list | tuple) and len(p) == 2]
    if not isinstance(variables, list | tuple) or not variables:
        return None, ()
    refs: list[weakref.ref[Any]] = []
    for v in variables[:3]:
        try:
            refs.append(weakref.ref(v))
        except TypeError:
            return None, ()  # not to be told apart when freed: no judgement by ids
    return frozenset(id(v) for v in variables), tuple(refs)


def step_function_class(base: type, recorder: Recorder, eager: Callable[[], bool]) -> type:
    """`tf.function`'s class for the functions the hook watches, whose eager calls each count
    (a call inside another function's trace is that one's): a step of the optimizer it
    updates, or, updating none, an inference call named after it (a function that called a
    model outside training, integrations/inference.py: a `@tf.function` predict loop)."""
    count, base_call, inference = counter(recorder), base.__call__, recorder.auto.inference

    class StepFunction(base):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            owner = getattr(self, _OWNER, None)
            if owner is not None:  # counted as the step begins, as hook.step() and Keras do:
                if eager():  # what the loop does after the call is this step's too
                    try:
                        count(owner)
                    except Exception as exc:
                        failed(recorder, exc)
                return base_call(self, *args, **kwargs)
            t0 = perf_counter()
            result = base_call(self, *args, **kwargs)
            if eager() and not (inference.blind or inference.fitting) and getattr(self, _OWNER, None) is None:
                try:
                    inference.called(getattr(self, "_name", "tf.function"), perf_counter() - t0)
                except Exception as exc:
                    failed(recorder, exc)
            return result

    StepFunction.__name__ = StepFunction.__qualname__ = base.__name__  # as TF names it
    return StepFunction


def outermost_self(codes: tuple[CodeType, ...]) -> Any:
    """`self` of the outermost frame on this thread's stack that runs one of `codes` (a
    function's call being traced: walked at trace time only). A MirroredStrategy traces each
    replica's step on a thread of its own (`strategy.run` inside a `tf.function`), while the
    thread that traces the function waits: there, that thread's stack is the one to walk
    (tensorflow#36530's custom loop was not traced at all)."""
    outer = _outermost_on(sys._getframe(1), codes)
    if outer is None and type(threading.current_thread()).__name__ == "_MirroredReplicaThread":
        me = threading.get_ident()
        for ident, frame in sys._current_frames().items():
            if ident != me and (found := _outermost_on(frame, codes)) is not None:
                return found
    return outer


def _outermost_on(frame: FrameType | None, codes: tuple[CodeType, ...]) -> Any:
    outer = None
    while frame is not None:
        if frame.f_code in codes:
            outer = frame.f_locals.get("self")
        frame = frame.f_back
    return outer


def marker(base: type, step_class: type) -> Callable[[Any], Any]:
    """`mark(optimizer)`: the outermost `base` instance being called (at trace time)
    becomes a `step_class` updating `optimizer`; returns the optimizer when newly marked."""
    outermost = _outermost(base, step_class)

    def mark(optimizer: Any) -> Any:
        outer = outermost()
        if outer is None:
            return None
        before = getattr(outer, _OWNER, None)  # an optimizer's update wins over a gradient
        if before is not None and (before is not TAPE or optimizer is TAPE):
            return None  # marked before: a retrace's call counts as the function's call
        setattr(outer, _OWNER, optimizer)
        outer.__class__ = step_class
        return optimizer

    return mark


def watcher(base: type, step_class: type) -> Callable[[], None]:
    """`watch()`: the outermost `base` instance being called (at trace time) becomes a
    `step_class` that updates nothing yet: its calls are inference calls until it does."""
    outermost = _outermost(base, step_class)

    def watch() -> None:
        outer = outermost()
        if type(outer) is base:
            outer.__class__ = step_class

    return watch


def _outermost(base: type, step_class: type) -> Callable[[], Any]:
    """The outermost `base` or `step_class` instance being called (None for a subclass of
    TF's: not ours to change)."""
    codes = (inspect.unwrap(base.__call__).__code__,)

    def outermost() -> Any:
        outer = outermost_self(codes)
        return outer if type(outer) is base or type(outer) is step_class else None

    return outermost


def patch_own(cls: Any, name: str, wrap: Callable[..., Any]) -> bool:
    """`cls.name = wrap(cls.name)` unless wrapped already; False when `cls` has no `name` of its
    own (an inherited one is left to the class that defines it)."""
    original = cls.__dict__.get(name) if cls is not None else None
    if original is None:
        return False
    if not getattr(original, "__epochwatch__", False):
        setattr(cls, name, wrap(original))
    return True


def tf_functions(recorder: Recorder) -> tuple[Callable[[Any], Any], Callable[[], None]]:
    """(mark, watch) for TensorFlow's `tf.function`, made once per Recorder (one class of
    watched functions for Keras, tf_keras and the inference calls)."""
    auto = recorder.auto
    if auto.tf_marks is None:
        from tensorflow.python.eager import context
        from tensorflow.python.eager.polymorphic_function.polymorphic_function import Function

        step_class = step_function_class(Function, recorder, context.executing_eagerly)
        auto.tf_marks = (marker(Function, step_class), watcher(Function, step_class))
    return auto.tf_marks


def _tf_update(recorder: Recorder) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wraps an update for TensorFlow: eager steps counted, traced ones mark their function."""
    from tensorflow.python.eager import context

    mark = tf_functions(recorder)[0]
    return lambda f: wrap_update(f, recorder, context.executing_eagerly, mark)


def install_keras(recorder: Recorder) -> None:
    """Keras 3's optimizers: every update goes through `BaseOptimizer.apply` (on the torch
    backend each call counts: no tf.function there). On JAX, integrations/jit_steps.py wraps
    it: a traced update marks the `jax.jit` function that traced it."""
    import keras
    from keras.src.optimizers import base_optimizer

    backend = keras.backend.backend()
    if backend == "jax":
        return
    wrap = _tf_update(recorder) if backend == "tensorflow" else (lambda f: wrap_update(f, recorder))
    patch_own(base_optimizer.BaseOptimizer, "apply", wrap)


def install_tf(recorder: Recorder) -> None:
    """TensorFlow's `GradientTape.gradient`: the steps of a loop that has no optimizer."""
    from tensorflow.python.eager import backprop, context

    mark = tf_functions(recorder)[0]
    recorder.auto.fit_facts["tensorflow"] = eager.loop_facts
    patch_own(
        backprop.GradientTape,
        "gradient",
        lambda f: wrap_update(f, recorder, context.executing_eagerly, mark, owner=TAPE),
    )


def install_tf_keras(recorder: Recorder) -> None:
    """tf_keras' optimizers (the new ones and the legacy ones): `apply_gradients`."""
    import tf_keras

    wrap = _tf_update(recorder)
    for cls in (
        getattr(tf_keras.optimizers, "Optimizer", None),
        getattr(getattr(tf_keras.optimizers, "legacy", None), "Optimizer", None),
    ):
        for klass in getattr(cls, "__mro__", ())[:3]:
            if patch_own(klass, "apply_gradients", wrap):
                break


def install_torch(recorder: Recorder) -> None:
    """PyTorch: one global post-step hook for every optimizer."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    count = counter(recorder)
    recorder.auto.fit_records = False  # torch.py writes each optimizer's fit_start itself

    def on_step(optimizer: Any, _args: Any, _kwargs: Any) -> None:
        try:
            count(optimizer)
        except Exception as exc:
            failed(recorder, exc)

    register_optimizer_step_post_hook(on_step)
