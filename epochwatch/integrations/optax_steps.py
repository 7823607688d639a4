"""optax updates as steps, for JAX loops that call no `hook.step()` (recorder/auto_epochs.py).

A JAX training step ends in `optax.apply_updates(params, updates)` (flax's
`TrainState.apply_gradients` calls it too); an optax optimizer's own `update` is a closure
per transformation, and a chain calls several per step, so `apply_updates` is the one
call that is exactly one step. Two cases:

- Eager (no jit around it): each call is a step.
- Inside `jax.jit`: Python runs only while the function is traced, and a jitted call
  never enters Python again (the C++ fast path). So `jax.jit` hands back a thin wrapper
  (`Jitted`: the call, and every attribute, go to JAX's own object); an `apply_updates`
  traced inside one marks the outermost such wrapper on the stack as a step function
  (its class becomes `JitStep`, the same layout), and from then on each call of it is a
  step. The call that traced it is counted at the trace; retraces add nothing.
  Not seen: updates under `jax.pmap` or in a `lax.scan` over steps (one step per call
  is counted there), and functions jitted before `import optax`.

Cost on the training thread: an unmarked jitted call pays one Python call (about 0.1 us);
a step function's call adds `AutoEpochs.step` (bench/primitives.py measures both).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch.integrations.optimizer_steps import counter, failed, outermost_self, wrap_update

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
    """A jitted function that applies optax updates: each call is a step (`count` is set
    by `install`; the class is assigned to a `Jitted` when its trace shows an update)."""

    __slots__ = ()
    count: Callable[[Any], None] = staticmethod(lambda _owner: None)
    failed: Callable[[Exception], None] = staticmethod(lambda _exc: None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self._jitted(*args, **kwargs)
        try:
            JitStep.count(self)
        except Exception as exc:
            JitStep.failed(exc)
        return result


class Eager:
    """The owner of eager `apply_updates` steps (no jitted function to tell models apart)."""

    __slots__ = ("__weakref__", "_epochwatch_serial")


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


def _mark(_params: Any) -> Any:
    """The outermost `Jitted` being traced becomes a `JitStep` (returned; None if it was)."""
    jitted = outermost_self(_CALL_CODES)
    if type(jitted) is not Jitted:  # none, or a step function already
        return None
    jitted.__class__ = JitStep
    return jitted


def wrap_apply_updates(
    original: Callable[..., Any], recorder: Recorder, top_level: Callable[[], bool]
) -> Callable[..., Any]:
    """`optax.apply_updates` that counts an eager step or marks the jitted step function."""
    return wrap_update(original, recorder, top_level, _mark, owner=Eager())


def install(recorder: Recorder) -> None:
    """Wrap `jax.jit` and `optax.apply_updates` (at `import optax`: JAX-only code never pays)."""
    import jax
    import optax
    from jax._src import core
    from optax._src import update

    JitStep.count = staticmethod(counter(recorder))
    JitStep.failed = staticmethod(functools.partial(failed, recorder))
    if not getattr(jax.jit, "__epochwatch__", False):
        jax.jit = wrap_jit(jax.jit)
    if not getattr(optax.apply_updates, "__epochwatch__", False):
        wrapped = wrap_apply_updates(update.apply_updates, recorder, core.trace_ctx.is_top_level)
        optax.apply_updates = update.apply_updates = wrapped
