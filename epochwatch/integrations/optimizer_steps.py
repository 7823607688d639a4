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

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "automatic epochs"
_OWNER = "_epochwatch_step_owner"  # set on a tf.function that updates an optimizer
_local = threading.local()  # .fn: the outermost tf.function being called on this thread


def counter(recorder: Recorder) -> Callable[[Any], None]:
    """`count(optimizer)`: one step, never raising into training (a failure switches the part off)."""
    auto = recorder.auto
    guard = recorder.guard

    def count(owner: Any) -> None:
        try:
            auto.step(owner)
        except Exception as exc:
            auto.off = True
            guard.disable(PART, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])

    return count


def wrap_update(original: Callable[..., Any], count: Callable[[Any], None]) -> Callable[..., Any]:
    """An optimizer's update method that counts a step (or marks the tf.function tracing it)."""

    @functools.wraps(original)
    def update(self: Any, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(_local, "fn", None)
        if fn is None:
            count(self)
        elif getattr(fn, _OWNER, None) is None:
            try:
                setattr(fn, _OWNER, self)
            except Exception:  # a function that takes no attributes: its steps go unseen
                pass
        return original(self, *args, **kwargs)

    update.__epochwatch__ = True  # type: ignore[attr-defined]
    return update


def wrap_function_call(original: Callable[..., Any], count: Callable[[Any], None]) -> Callable[..., Any]:
    """`tf.function.__call__`: the outermost call is noted; a step function's call is a step."""

    @functools.wraps(original)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(_local, "fn", None) is not None:  # nested: the outer call is the step
            return original(self, *args, **kwargs)
        _local.fn = self
        try:
            result = original(self, *args, **kwargs)
        finally:
            _local.fn = None
        owner = getattr(self, _OWNER, None)
        if owner is not None:
            count(owner)
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

    count = counter(recorder)
    _patch(base_optimizer.BaseOptimizer, "apply", lambda f: wrap_update(f, count))


def install_tf_keras(recorder: Recorder) -> None:
    """tf_keras' optimizers (the new ones and the legacy ones): `apply_gradients`."""
    import tf_keras

    count = counter(recorder)
    for cls in (
        getattr(tf_keras.optimizers, "Optimizer", None),
        getattr(getattr(tf_keras.optimizers, "legacy", None), "Optimizer", None),
    ):
        for klass in getattr(cls, "__mro__", ())[:3]:
            if _patch(klass, "apply_gradients", lambda f: wrap_update(f, count)):
                break


def install_tf(recorder: Recorder) -> None:
    """tf.function calls: a function that traced an optimizer update is a step function."""
    from tensorflow.python.eager.polymorphic_function import polymorphic_function

    count = counter(recorder)
    _patch(polymorphic_function.Function, "__call__", lambda f: wrap_function_call(f, count))


def install_torch(recorder: Recorder) -> None:
    """PyTorch: one global post-step hook for every optimizer."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    count = counter(recorder)
    recorder.auto.fit_records = False  # torch.py writes each optimizer's fit_start itself

    def on_step(optimizer: Any, _args: Any, _kwargs: Any) -> None:
        count(optimizer)

    register_optimizer_step_post_hook(on_step)
