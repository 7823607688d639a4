"""Optimizer updates as steps, for loops that call no `hook.step()` (recorder/auto_epochs.py).

Every training step ends in an optimizer update, whatever the loop looks like, so the
update is where steps are seen without help:

- Keras 3: `BaseOptimizer.apply` (which `apply_gradients` and every Keras optimizer use);
  tf_keras: `apply_gradients` of its optimizers.
- A step inside a `@tf.function` runs the update's Python only while the function is
  traced. So each outermost `tf.function` call notes itself on the thread; an update seen
  while one is being traced marks that function as a step function, and each later call
  of it is a step (of that optimizer).
- PyTorch (`torch.optim.optimizer.register_optimizer_step_post_hook`): one global hook.

Per step on the training thread: a thread-local read and a method call, well under a
microsecond (bench/primitives.py measures it). Steps inside a Keras fit are the fit's and
are dropped in `AutoEpochs.step` (one compare).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "automatic epochs"
_OWNER = "_epochwatch_step_owner"  # set on a tf.function that updates an optimizer


class _Calls(threading.local):
    """The outermost tf.function being called on this thread (a class default, so reading
    it on a thread that never set it costs no AttributeError)."""

    fn: Any = None


_local = _Calls()


def counter(recorder: Recorder) -> Callable[[Any], None]:
    """`count(optimizer)`: one step. `AutoEpochs.step` itself, bound (a wrapper around it
    would double the cost); the wraps call it inside `try` and hand a failure to `failed`."""
    return recorder.auto.step


def failed(recorder: Recorder, exc: Exception) -> None:
    """A step could not be counted: automatic epochs switch off, training goes on."""
    recorder.auto.off = True
    recorder.guard.disable(PART, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])


def wrap_update(original: Callable[..., Any], recorder: Recorder) -> Callable[..., Any]:
    """An optimizer's update method that counts a step (or marks the tf.function tracing it)."""
    count = counter(recorder)

    @functools.wraps(original)
    def update(self: Any, *args: Any, **kwargs: Any) -> Any:
        fn = _local.fn
        if fn is None:
            try:
                count(self)
            except Exception as exc:
                failed(recorder, exc)
        elif getattr(fn, _OWNER, None) is None and recorder.epoch_source in (None, "auto"):
            # Traced outside a fit (a fit's train function stays unmarked: its steps are the fit's).
            with contextlib.suppress(Exception):  # no attributes taken: its steps go unseen
                setattr(fn, _OWNER, self)
        return original(self, *args, **kwargs)

    update.__epochwatch__ = True  # type: ignore[attr-defined]
    return update


def wrap_function_call(original: Callable[..., Any], recorder: Recorder) -> Callable[..., Any]:
    """`tf.function.__call__`: the outermost call is noted; a step function's call is a step."""
    count = counter(recorder)

    @functools.wraps(original)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _local.fn is not None:  # nested: the outer call is the step
            return original(self, *args, **kwargs)
        _local.fn = self
        try:
            result = original(self, *args, **kwargs)
        finally:
            _local.fn = None
        owner = getattr(self, _OWNER, None)
        if owner is not None:
            try:
                count(owner)
            except Exception as exc:
                failed(recorder, exc)
        return result

    __call__.__epochwatch__ = True  # type: ignore[attr-defined]
    return __call__


def _patch(cls: Any, name: str, wrap: Callable[..., Any]) -> bool:
    original = cls.__dict__.get(name) if cls is not None else None
    if original is None:
        return False
    if not getattr(original, "__epochwatch__", False):
        setattr(cls, name, wrap(original))
    return True


def install_keras(recorder: Recorder) -> None:
    """Keras 3's optimizers: every update goes through `BaseOptimizer.apply`."""
    from keras.src.optimizers import base_optimizer

    _patch(base_optimizer.BaseOptimizer, "apply", lambda f: wrap_update(f, recorder))


def install_tf_keras(recorder: Recorder) -> None:
    """tf_keras' optimizers (the new ones and the legacy ones): `apply_gradients`."""
    import tf_keras

    for cls in (
        getattr(tf_keras.optimizers, "Optimizer", None),
        getattr(getattr(tf_keras.optimizers, "legacy", None), "Optimizer", None),
    ):
        for klass in getattr(cls, "__mro__", ())[:3]:
            if _patch(klass, "apply_gradients", lambda f: wrap_update(f, recorder)):
                break


def install_tf(recorder: Recorder) -> None:
    """tf.function calls: a function that traced an optimizer update is a step function."""
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    _patch(polymorphic_function.Function, "__call__", lambda f: wrap_function_call(f, recorder))


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
