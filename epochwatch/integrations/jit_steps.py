"""JAX jitted step functions: each call of a `jax.jit` function that traced an update is a step.

A JAX training step's update (`optax.apply_updates`, integrations/optax_steps.py; Keras 3's
`BaseOptimizer.apply`, which `optimizer.stateless_apply` calls, integrations/optimizer_steps.py)
runs its Python only while `jax.jit` traces the step, and a jitted call never enters Python
again (the C++ fast path). So `jax.jit` hands back a thin wrapper (`Jitted`: the call, and
every attribute, go to JAX's own object); an update traced inside one marks the outermost such
wrapper on the stack as a step function (`mark`: its class becomes `JitStep`, the same
layout), and from then on each call of it is a step. The call that traced it is counted at the
trace; retraces add nothing. Not seen: updates under `jax.pmap` or in a `lax.scan` over steps
(one step per call is counted there), and functions jitted before `jax.jit` was wrapped (at
`import optax`, or `import keras` on the JAX backend). Keras' JAX trainer calls the `jit` it
bound at its import (`keras.src.backend.jax.trainer.jit`): that name is wrapped too
(`install_keras`), so the train function `train_on_batch` calls is a `Jitted`, marked by the
update its trace runs. A fit's train function is traced inside the fit: never marked, its
steps are the fit's (one Python call more per fit step).

Cost on the training thread: an unmarked jitted call pays one Python call (about 0.1 us);
a step function's call adds `AutoEpochs.step` (bench/primitives.py measures both).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch.integrations import patch
from epochwatch.integrations.optimizer_steps import counter, failed, outermost_self, patch_own, wrap_update

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder


class Jitted:
    """What `jax.jit` returns while the hook is installed: JAX's jitted function, called
    through one Python call so a step function can be counted."""

    __slots__ = ("__weakref__", "_epochwatch_serial", "_jitted")

    def __init__(self, jitted: Any) -> None:
        self._jitted = jitted

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._jitted(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # lower, trace, eval_shape, __wrapped__, ...
        if name == "_jitted":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self._jitted, name)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:  # a jitted method
        return self if obj is None else functools.partial(self, obj)

    def __repr__(self) -> str:
        return repr(self._jitted)


class JitStep(Jitted):
    """A jitted function that applies updates: each call is a step (`count` is set by
    `install`; the class is assigned to a `Jitted` when its trace shows an update)."""

    __slots__ = ()
    count: Callable[[Any], None] = staticmethod(lambda _owner: None)
    failed: Callable[[Exception], None] = staticmethod(lambda _exc: None)

    @property
    def epochwatch_step_name(self) -> str:
        """What a custom loop's fit_start names as its model: this step function (the
        optimizer it applies is inside the jitted code, not known here)."""
        fun = getattr(self._jitted, "__wrapped__", None)
        while isinstance(fun, functools.partial):
            fun = fun.func
        return f"jax.jit {getattr(fun, '__name__', 'step')}"[:100]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self._jitted(*args, **kwargs)
        try:
            JitStep.count(self)
        except Exception as exc:
            JitStep.failed(exc)
        return result


_CALL_CODES = (Jitted.__call__.__code__, JitStep.__call__.__code__)


def wrap_jit(original: Callable[..., Any]) -> Callable[..., Any]:
    """`jax.jit(fun, **options)` or `jax.jit(**options)(fun)`, giving back a `Jitted`."""

    @functools.wraps(original)
    def jit(*args: Any, **kwargs: Any) -> Any:
        made = original(*args, **kwargs)
        if args or "fun" in kwargs:
            return Jitted(made)
        return lambda fun: Jitted(made(fun))  # used as @jax.jit(static_argnums=...)

    jit.__epochwatch__ = True  # type: ignore[attr-defined]
    return jit


def mark(_updater: Any) -> Any:
    """The outermost `Jitted` being traced becomes a `JitStep` (returned; None if it was, or
    the update is traced under no `Jitted`)."""
    jitted = outermost_self(_CALL_CODES)
    if type(jitted) is not Jitted:  # none, or a step function already
        return None
    jitted.__class__ = JitStep
    return jitted


def training_of(owner: Any) -> Any:
    """What a step function trains, for `AutoEpochs.training_of`: the code of the function
    jitted (`jax.jit(lambda p, s, b: update(p, s, b))` made each epoch has the same code each
    time; a `functools.partial`'s function's). None for anything but a `JitStep`."""
    if type(owner) is not JitStep:
        return None
    fun = getattr(owner._jitted, "__wrapped__", None)
    while isinstance(fun, functools.partial):
        fun = fun.func
    return getattr(fun, "__code__", None)


def install(recorder: Recorder) -> Callable[[], bool]:
    """Wrap `jax.jit` (once) and count `JitStep` calls for `recorder`; returns JAX's "not
    under a trace" check, the `eager` of the updates' wraps."""
    import jax
    from jax._src import core

    JitStep.count = staticmethod(counter(recorder))
    JitStep.failed = staticmethod(functools.partial(failed, recorder))
    recorder.auto.training_of = training_of
    patch(jax, "jit", wrap_jit)
    return core.trace_ctx.is_top_level


def install_keras(recorder: Recorder) -> None:
    """Keras 3 on JAX: `BaseOptimizer.apply` (`stateless_apply` calls it) counts an eager
    update, and one traced inside a `Jitted` marks it a step function (Keras' guide loop:
    `stateless_apply` in a `jax.jit` step; `model.train_on_batch`, whose train function
    Keras' trainer jits with the `jit` it bound at its import: `wrap_trainer_jit`). A fit's
    train function is traced inside the fit, so never marked: a fit's updates are its own."""
    import keras
    from keras.src.optimizers import base_optimizer

    if keras.backend.backend() != "jax":
        return
    top_level = install(recorder)
    patch_own(base_optimizer.BaseOptimizer, "apply", lambda f: wrap_update(f, recorder, top_level, mark))
    wrap_trainer_jit()


def wrap_trainer_jit() -> None:
    """`keras.src.backend.jax.trainer.jit`, JAX's `jit` bound at Keras' import, becomes the
    wrapped `jax.jit` (`install` wrapped it first), so the functions Keras jits from then on
    are `Jitted`. Left alone where it is anything else (flax's `nnx.jit` under Keras' NNX
    mode) or the module is not there (another Keras)."""
    import jax

    try:
        from keras.src.backend.jax import trainer
    except ImportError:
        return
    bound = getattr(trainer, "jit", None)
    if bound is not None and bound is getattr(jax.jit, "__wrapped__", None):
        trainer.jit = jax.jit
