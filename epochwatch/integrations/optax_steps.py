"""optax updates as steps, for JAX loops that call no `hook.step()` (recorder/auto_epochs.py).

A JAX training step ends in `optax.apply_updates(params, updates)` (flax's
`TrainState.apply_gradients` calls it too); an optax optimizer's own `update` is a closure
per transformation, and a chain calls several per step, so `apply_updates` is the one
call that is exactly one step. Two cases:

- Eager (no jit around it): each call is a step.
- Inside `jax.jit`: the jitted function that traced it becomes a step function, each of its
  calls a step (integrations/jit_steps.py, shared with Keras 3's optimizers on JAX).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch.integrations import jit_steps
from epochwatch.integrations.jit_steps import JitStep, Jitted, wrap_jit
from epochwatch.integrations.optimizer_steps import counter, wrap_update

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

__all__ = ["Eager", "JitStep", "Jitted", "counter", "install", "wrap_apply_updates", "wrap_jit"]


class Eager:
    """The owner of eager `apply_updates` steps (no jitted function to tell models apart)."""

    __slots__ = ("__weakref__", "_epochwatch_serial")


def wrap_apply_updates(
    original: Callable[..., Any], recorder: Recorder, top_level: Callable[[], bool]
) -> Callable[..., Any]:
    """`optax.apply_updates` that counts an eager step or marks the jitted step function."""
    return wrap_update(original, recorder, top_level, jit_steps.mark, owner=Eager())


def install(recorder: Recorder) -> None:
    """Wrap `jax.jit` and `optax.apply_updates` (at `import optax`: JAX-only code never pays)."""
    import optax
    from optax._src import update

    top_level = jit_steps.install(recorder)
    if not getattr(optax.apply_updates, "__epochwatch__", False):
        wrapped = wrap_apply_updates(update.apply_updates, recorder, top_level)
        optax.apply_updates = update.apply_updates = wrapped
