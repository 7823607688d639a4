"""The always-on clocks on the user's callbacks' batch hooks (integrations/batch_clocks.py),
without Keras: only overridden hooks are clocked, per class and hook, per epoch, and the
callback is as it was after the fit."""

from __future__ import annotations

import time
from typing import Any

from epochwatch.integrations.batch_clocks import BatchClocks


def _default(fn: Any) -> Any:
    fn._is_default = True  # as keras.src.utils.default marks the base class's no-ops
    return fn


class Base:
    @_default
    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        return None

    @_default
    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        return None


class Slow(Base):
    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        time.sleep(0.002)


class OldName(Base):  # Keras' default on_train_batch_end calls on_batch_end
    def on_batch_end(self, batch: int, logs: Any = None) -> None:
        return None


def test_only_overridden_hooks_are_clocked_per_epoch_and_restored() -> None:
    slow, quiet, old = Slow(), Base(), OldName()
    clocks = BatchClocks()
    clocks.wrap([slow, quiet, old])
    assert "on_train_batch_end" in vars(slow) and "on_train_batch_end" in vars(old)
    assert "on_train_batch_begin" not in vars(slow) and not vars(quiet)  # Keras still skips no-ops
    for batch in range(5):
        slow.on_train_batch_end(batch, logs={})
    epoch = clocks.take()
    assert set(epoch) == {"Slow.on_train_batch_end"} and 0.01 <= epoch["Slow.on_train_batch_end"] < 0.5
    assert clocks.take() == {}  # per epoch: read and zeroed
    clocks.unwrap()
    assert not vars(slow) and not vars(old)
