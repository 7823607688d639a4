"""`import epochwatch.hook`: trace every Keras fit and custom loop in this process.

Importing this module attaches epochwatch; it never imports TensorFlow or Keras itself
(integrations install when the script imports them). The functions below are the
custom-loop API:

    from epochwatch import hook
    for n in range(epochs):
        with hook.epoch(n):
            ...
            hook.log(loss=loss, accuracy=acc)
    hook.watch("checkpoints/")

Nothing here raises into training: errors are reported once on stderr and switch off
only the part that failed. `EPOCHWATCH_DISABLE=1` makes all of it a no-op.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from epochwatch import environment
from epochwatch.guard import say
from epochwatch.recorder import Recorder
from epochwatch.trace import schema

__all__ = ["epoch", "log", "recorder", "step", "watch"]

_recorder: Recorder | None = None
_uncaught: BaseException | None = None
_install_lock = threading.Lock()


def recorder() -> Recorder | None:
    """The process's Recorder, or None when epochwatch is disabled."""
    return _recorder


@contextlib.contextmanager
def epoch(number: int) -> Iterator[None]:
    """Mark one epoch of a custom training loop; its record is written when the block ends.

    An epoch whose block raises is not recorded (it did not finish); the exception goes
    on to the caller untouched.
    """
    rec = _recorder
    if rec is None or rec.in_epoch:  # disabled, or nested inside a Keras epoch
        yield
        return
    t0 = time.perf_counter()
    rec.guard.run("loop API", lambda: rec.begin_epoch(int(number), "loop"), None)
    rec.add_overhead(time.perf_counter() - t0)
    try:
        yield
    except BaseException:
        rec.guard.run("loop API", rec.abandon_epoch, None)
        raise
    end = time.perf_counter()
    rec.guard.run("loop API", lambda: rec.end_epoch({}, end_perf=end), None)


def log(**metrics: Any) -> None:
    """Record metric values for the current epoch (e.g. per step); the epoch gets their mean.

    Tensors are kept as they are and converted at the epoch's end, so logging a GPU
    tensor every step does not force a device sync every step.
    """
    rec = _recorder
    if rec is None:
        return
    t0 = time.perf_counter()
    rec.guard.run("loop API", lambda: rec.log(metrics), None)
    rec.add_overhead(time.perf_counter() - t0)


def step() -> None:
    """Mark the start of one step of a custom loop's epoch (optional).

    Long epochs then get sub-epoch `interval` records (step times, RSS, watched
    directories every fraction of an epoch), so a leak or slowdown inside a run of one or
    two long epochs is found while it trains. Costs a clock read, an append and a compare.
    """
    rec = _recorder
    if rec is not None:
        rec.step()


def watch(path: str | os.PathLike[str]) -> None:
    """Watch a directory's growth (bytes, files) at every epoch end."""
    rec = _recorder
    if rec is None:
        return
    rec.guard.run("directory watching", lambda: rec.watch(path, "user"), None)


def _excepthook_chain() -> None:
    """Remember an uncaught exception so run_end can say how the run ended."""
    previous = sys.excepthook

    def excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        global _uncaught
        _uncaught = exc
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook


def _at_exit() -> None:
    rec = _recorder
    if rec is None or not rec.started:
        return
    exc = _uncaught
    if exc is None:
        ended = schema.ENDED_COMPLETED
    elif isinstance(exc, KeyboardInterrupt):
        ended = schema.ENDED_INTERRUPTED
    else:
        ended = schema.ENDED_RAISED
    try:
        rec.finish(ended, exc if ended == schema.ENDED_RAISED else None)
    except Exception as err:  # the interpreter is going away; say it and go
        say(f"could not finish the trace: {err}")


def _install() -> None:
    global _recorder
    with _install_lock:
        if _recorder is not None or environment.disabled():
            return
        rec = Recorder()
        _recorder = rec
    from epochwatch.integrations import INTEGRATIONS
    from epochwatch.postimport import when_imported

    for module_name, part, install in INTEGRATIONS:

        def on_import(_module: Any, install: Any = install, part: str = part) -> None:
            t0 = time.perf_counter()
            rec.guard.run(part, lambda: install(rec), None)
            rec.add_overhead(time.perf_counter() - t0)

        when_imported(module_name, on_import)
    _excepthook_chain()
    atexit.register(_at_exit)


try:
    _install()
except Exception as _exc:  # never let attaching break the import of a training script
    say(f"disabled: {type(_exc).__name__}: {_exc}")
