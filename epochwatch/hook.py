"""`import epochwatch.hook`: trace every Keras fit and custom loop in this process.

Importing this module attaches epochwatch; it never imports TensorFlow or Keras itself
(integrations install when the script imports them). The functions below are the
custom-loop API:

    from epochwatch import hook
    for n in range(epochs):
        with hook.epoch(n):
            for x, y in batches:
                with hook.step():  # optional: the time between steps is the input wait
                    ...
            hook.log(loss=loss, accuracy=acc)
    hook.watch("checkpoints/")
    hook.findings()          # what was found so far, as in `epochwatch report --format json`

None of these calls is needed: a loop that marks nothing has its optimizer updates counted
as steps and its passes over a dataset (else windows of steps or seconds) as epochs, a
script that only predicts is traced as an inference run (recorder/auto_epochs.py); the
first `hook.epoch()` switches that off, so the script's own epochs win.

Each finding (warning and up) is also said on stderr in one line at the next epoch
boundary (never inside Keras' progress bar), and the run's end in one line with its trace
(epochwatch/console.py; EPOCHWATCH_QUIET=1 silences them). In a notebook kernel each Keras
fit is a run of its own, named after the notebook.

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

from epochwatch import envvars, notices
from epochwatch.console import Console
from epochwatch.guard import say
from epochwatch.recorder import Recorder
from epochwatch.step_clock import StepClock
from epochwatch.trace import schema

__all__ = ["epoch", "findings", "log", "recorder", "step", "watch"]

_recorder: Recorder | None = None
_console: Console | None = None
_uncaught: BaseException | None = None
_install_lock = threading.Lock()
_steps = StepClock()
_no_step = contextlib.nullcontext()


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
    if rec is not None and not rec.auto.off:  # the script marks its epochs: ours stop
        rec.guard.run("automatic epochs", rec.auto.switch_off, None)
    if rec is None or rec.in_epoch:  # disabled, or nested inside a Keras epoch
        yield
        return
    t0 = time.perf_counter()
    rec.guard.run("loop API", lambda: rec.begin_epoch(int(number), "loop"), None)
    _steps.begin(time.perf_counter())
    rec.add_overhead(time.perf_counter() - t0)
    try:
        yield
    except BaseException as exc:
        rec.guard.run("loop API", rec.abandon_epoch, None)
        rec.escaped(exc)
        raise
    end = time.perf_counter()
    rec.guard.run("loop API", lambda: rec.end_epoch(_steps.fields(end), end_perf=end), None)


def step() -> contextlib.AbstractContextManager[Any]:
    """Mark one training step of a custom loop (optional): `hook.step()` as the step begins,
    or `with hook.step(): train_step(x, y)` around it.

    Either way long epochs get sub-epoch `interval` records (step times, RSS, watched
    directories every fraction of an epoch), so a leak or slowdown inside a run of one or
    two long epochs is found while it trains: a clock read, an append and a compare. Used
    with `with`, the time from the epoch's start to its first step and between one step's
    end and the next one's start (fetching the batch, anything else outside the steps) is
    also recorded as the epoch's `input_wait_seconds`, with the step count and steps per
    second: two more clock reads.
    """
    rec = _recorder
    if rec is None:
        return _no_step
    rec.guard.run("loop API", rec.step, None)
    return _steps


def log(**metrics: Any) -> None:
    """Record metric values for the current epoch (e.g. per step); the epoch gets their mean.

    Tensors are kept as they are and converted at the epoch's end, so logging a GPU
    tensor every step does not force a device sync every step.
    """
    rec = _recorder
    if rec is None:
        return
    t0 = time.perf_counter()
    try:  # the Guard's work inline: this runs every step, a closure a call is a tenth of its cost
        if "loop API" not in rec.guard.disabled_parts:
            rec.log(metrics)
    except Exception as exc:
        rec.guard.disable("loop API", f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    rec.add_overhead(time.perf_counter() - t0)


def watch(path: str | os.PathLike[str]) -> None:
    """Watch a directory's growth (bytes, files) at every epoch end."""
    rec = _recorder
    if rec is None:
        return
    rec.guard.run("directory watching", lambda: rec.watch(path, "user"), None)


def findings() -> list[dict[str, Any]]:
    """The run's findings so far: the dicts of the report's JSON (`kind`, `severity`,
    `title`, `evidence`, `hint`, ..., and the `run_id` of their run). In a notebook, where
    each fit is a run, every fit of the kernel session, fit by fit (`.by_fit()`). In Jupyter
    the list displays as the HTML report of those fits."""
    from epochwatch.notebook import Findings

    rec = _recorder
    if rec is not None:  # detection runs on its own thread: let it catch up with the last epoch
        rec.guard.run("online detection", lambda: rec.flush_analysis(2.0), None)
    console = _console
    if console is None:
        return Findings([])
    return Findings(list(console.findings), console.traces)


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
    if rec is not None and not rec.started:  # a script that only predicted a few times
        rec.guard.run("inference calls", rec.auto.inference.close, None)
    if rec is None or not rec.started:
        return
    exc = _uncaught or rec.exit_seen
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


def _attach_console(rec: Recorder) -> None:
    """Findings and the run's end on stderr, each at an epoch boundary (console.py); in a
    notebook, one run per fit, and hook.findings() keeps every fit's."""
    global _console
    from epochwatch.runname import in_notebook

    notices.in_training_process = True
    console = Console(rec.environ.get(envvars.EPOCHWATCH_QUIET))
    _console = console

    def on_record(record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == schema.RUN_START:  # a new run (a notebook's next fit)
            console.reset(record.get("run_id"))
            console.trace = rec.trace_path
        elif kind == "fit_end":  # Keras has printed its last line of the fit
            console.boundary()
        elif kind == schema.EXPLAIN:  # where a slowdown or a leak is
            console.explained(record)

    def on_finding(record: dict[str, Any]) -> None:
        # A daemon's welcome (with its trace path) comes after run_start: the hello is said
        # off the training thread. Ask again when there is something to say.
        console.trace = rec.trace_path or console.trace
        console.observe(record)

    def on_close(epochs: int, trace: str | None) -> None:
        windows = rec.auto.inference.windows
        console.close(epochs, trace, rec.guard.disabled.get("trace writer"), windows)

    console.seen = rec.auto.inference.closing_text  # a run that never trained says what it saw
    rec.add_listener(on_record, "console")
    rec.add_finding_listener(on_finding, "console")
    rec.before_epoch(console.boundary, "console")
    rec.after_finish(on_close)
    rec.per_fit_runs = in_notebook()


def _profiler() -> Any:
    """The framework profiler for explain's captures (integrations/profilers.py), or None."""
    from epochwatch.integrations.profilers import for_run

    return for_run()


def _cuda_history() -> Any:
    """torch's CUDA allocation history for explain's GPU window, once the script imported torch."""
    if "torch" not in sys.modules:
        return None
    from epochwatch.integrations.torch_cuda_history import CudaHistory

    return CudaHistory()


def _install() -> None:
    global _recorder
    with _install_lock:
        if _recorder is not None or envvars.disabled():
            return
        rec = Recorder()
        _recorder = rec
    _attach_console(rec)
    from epochwatch import explain

    # The look inside when a slowdown or a leak is suspected (its failure: that part off).
    rec.guard.run("explain", lambda: explain.attach(rec, _profiler, _cuda_history), None)
    from epochwatch.integrations.tensors import reduce_sum, scalar

    rec.tensor_reducer, rec.tensor_scalar = reduce_sum, scalar
    rec.prepare_in_background()
    from epochwatch.recorder.save_watch import watch_saves

    watch_saves(rec)
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
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)


# Seconds a fork waits for the hook's threads to finish an import.
FORK_WAIT = 5.0


def _before_fork() -> None:
    """A fork while one of the hook's threads imports leaves that module half made in the
    child, its import lock held for good by a thread the child lacks: a fold forked right after
    `import epochwatch.hook` hung at its first epoch (the warm-up's imports); one forked after
    its parent's first epoch lost online detection ("partially initialized module": the
    analysis thread was importing the detectors). The fork waits until none of them imports
    (each imports a few times a process, milliseconds each)."""
    deadline = time.monotonic() + FORK_WAIT
    while _hook_thread_importing() and time.monotonic() < deadline:
        time.sleep(0.002)


def _hook_thread_importing() -> bool:
    """True while a thread of the hook's (named epochwatch-*) other than this one is inside
    an import (importlib's `_find_and_load` on its stack)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    for ident, frame in sys._current_frames().items():
        if ident == me or not names.get(ident, "").startswith("epochwatch-"):
            continue
        walked: Any = frame
        while walked is not None:
            if walked.f_code.co_name == "_find_and_load":
                return True
            walked = walked.f_back
    return False


def _after_fork_in_child() -> None:
    """A forked child records a run of its own (Recorder.forked); one that multiprocessing
    started ends with os._exit, past atexit, so its run_end is written by multiprocessing's
    finalizers, which run before that exit (registered once its process has cleared those it
    inherited)."""
    rec = _recorder
    if rec is None:
        return
    rec.guard.run("fork", rec.forked, None)
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:

        def at_exit_too(_rec: Recorder) -> None:
            mp_util.Finalize(None, _at_exit, exitpriority=0)

        rec.guard.run("fork", lambda: mp_util.register_after_fork(rec, at_exit_too), None)


try:
    _install()
except Exception as _exc:  # never let attaching break the import of a training script
    say(f"disabled: {type(_exc).__name__}: {_exc}")
