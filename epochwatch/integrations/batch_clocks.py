"""Always-on clocks on the user's Keras callbacks' batch hooks.

A callback whose `on_train_batch_end` does more work every epoch slows every step, and the
step time alone cannot say whose work it is. The epoch record says it from the first
epoch on (`callbacks.by_class["Audit.on_train_batch_end"]`, seconds in the epoch), so the
slowdown finding names the callback as its likely cause (analysis/attribution.py, the
`cb_seconds` suspects) even before a stack window looks inside (explain/).

Only hooks a callback overrides are clocked (Keras' own no-op hooks stay as they are, so
Keras still skips them): the instance's method is replaced by a wrapper for the fit and
restored after it. A wrapper costs two `perf_counter` calls and an addition, ~0.2-0.3 us a
call on the training thread (bench/explain.py measures it).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

# The hook Keras calls each train batch, and the older name its default implementation calls.
HOOKS = (("on_train_batch_begin", "on_batch_begin"), ("on_train_batch_end", "on_batch_end"))


def _overridden(cls: type, name: str) -> bool:
    """Whether the class has its own `name`, not the Keras base class's no-op (Keras marks
    those `_is_default`, which is how its CallbackList skips them)."""
    method = getattr(cls, name, None)
    qualname = getattr(method, "__qualname__", "")
    module = getattr(method, "__module__", "") or ""
    base = qualname == f"Callback.{name}" and module.split(".")[0] in ("keras", "tf_keras", "tensorflow")
    return method is not None and not base and not getattr(method, "_is_default", False)


def timed(method: Callable[..., Any], cell: list[float]) -> Callable[..., Any]:
    """`method` with its time added to `cell[0]`. Keras calls a batch hook as
    `(batch, logs=logs)`: that fixed signature, not *args/**kwargs, saves packing them."""
    clock = time.perf_counter

    def clocked(batch: Any, logs: Any = None) -> Any:
        t0 = clock()
        try:
            return method(batch, logs=logs)
        finally:
            cell[0] += clock() - t0

    return clocked


class BatchClocks:
    """The clocks of one fit: wrap the user's callbacks, read each epoch, unwrap at its end."""

    def __init__(self) -> None:
        self._cells: dict[str, list[float]] = {}
        self._wrapped: list[tuple[Any, str]] = []

    def wrap(self, callbacks: list[Any]) -> None:
        for cb in callbacks:
            cls = type(cb)
            for hook, alias in HOOKS:
                if hook in vars(cb) or not (_overridden(cls, hook) or _overridden(cls, alias)):
                    continue  # set on the instance already (by us in another fit), or a no-op
                cell = self._cells.setdefault(f"{cls.__name__}.{hook}"[:120], [0.0])
                with contextlib.suppress(Exception):  # a callback that refuses attributes
                    setattr(cb, hook, timed(getattr(cb, hook), cell))
                    self._wrapped.append((cb, hook))

    def take(self) -> dict[str, float]:
        """Seconds per clocked hook since the last take (the epoch's), then zero again."""
        out = {}
        for key, cell in self._cells.items():
            if cell[0] > 0:
                out[key] = round(cell[0], 6)
            cell[0] = 0.0
        return out

    def unwrap(self) -> None:
        for cb, hook in self._wrapped:
            with contextlib.suppress(Exception):
                delattr(cb, hook)
        self._wrapped = []
