"""The Recorder: one per process, the only path from the hook's integrations to the trace.

Integrations tell it what happened (an epoch began, a fit started, a directory is worth
watching); it adds what the samplers see, measures its own cost, and writes records in
order through a Sink. Every public method is safe to call from training code: failures
are reported once through the Guard and switch off only the failing part.

It holds three parts, each handed what it needs: the run's set-up (`setup.py`: samplers,
watching, fingerprint), online detection (`detection.py`: the analysis thread and its
findings) and the interval writer (`interval_writer.py`: sub-epoch records).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from epochwatch import __version__, envvars
from epochwatch.explain.looking import LOOKING
from epochwatch.guard import Guard
from epochwatch.intervals import step_summary
from epochwatch.logged import LoggedMetrics
from epochwatch.recorder.auto_epochs import AutoEpochs
from epochwatch.recorder.detection import OnlineDetection
from epochwatch.recorder.inference_calls import LoopCalls
from epochwatch.recorder.interval_writer import IntervalWriter
from epochwatch.recorder.setup import EpochSource, RunSetup, warm_caches
from epochwatch.runname import new_run_id
from epochwatch.trace import schema
from epochwatch.trace.sink import Sink, open_sink

__all__ = ["Recorder", "new_run_id"]

# Not fed to online detection from _write: epochs and intervals (end_epoch and interval
# do), run_start (it is the analyzer's start), findings and their updates (its own);
# restores are judged by the restore watcher (checkpoints/resume.py), which has the parent
# run: here they would be said twice.
_NOT_FED = frozenset({schema.EPOCH, schema.INTERVAL, *schema.FINDINGS, schema.RUN_START, schema.RESTORE})


@dataclass
class _Epoch:
    number: int
    source: str
    fit: int | None
    start_wall: float
    start_perf: float
    overhead: float = 0.0
    metrics: LoggedMetrics = field(default_factory=LoggedMetrics)
    outer: _Epoch | None = None  # the custom-loop epoch a fit's epoch is nested in
    steps: list[float] = field(default_factory=list)  # step starts from hook.step() (custom loops)
    inference: LoopCalls | None = None  # Keras predict/evaluate calls made in a custom loop's epoch


class Recorder:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.guard = Guard()
        self.run_id = new_run_id()
        self.trace_dir = envvars.trace_dir(self.environ)
        self._lock = threading.RLock()
        self._sink: Sink | None = None
        self._started = False
        self._finished = False
        self._finishing = False
        self._start_perf = 0.0
        self._epoch: _Epoch | None = None
        self._epochs_written = 0
        self._fits = 0
        self._epoch_sources: dict[str, EpochSource] = {}
        self._field_sources: dict[str, EpochSource] = {}
        self.retrace_ledger: Any = None  # the one RetraceLedger TF, JAX and torch.compile share
        self.setup = RunSetup(self.environ, self.guard, self._emit_locked)
        self.detection = OnlineDetection(self.guard, self._write_late)
        self.intervals = IntervalWriter(self.guard, lambda: self.setup.dirs)
        self.clock = self.intervals.clock  # compared with at every step: when an interval is due
        self.auto = AutoEpochs(self)  # epochs cut from the steps of loops that mark none
        self._listeners: list[tuple[str, Callable[[dict[str, Any]], None]]] = []
        self._finishers: list[Callable[[], None]] = []
        self._finding_listeners: list[tuple[str, Callable[[dict[str, Any]], None]]] = []
        self._closers: list[Callable[[int, str | None], None]] = []
        self._openers: list[tuple[str, Callable[[], None]]] = []
        self._carry_overhead = 0.0
        self._background_counted = 0.0  # the hook's threads' CPU already in overhead_seconds
        self.overhead_total = 0.0
        self.per_fit_runs = False  # a notebook kernel: each fit ends its run (finish(reopen=True))
        self.overhead_background = 0.0
        self._warmup_cpu = 0.0
        self.warmed_up = threading.Event()  # set when the warm-up thread is done (benchmarks wait on it)
        self.exit_seen: SystemExit | None = None  # a non-zero sys.exit that left a fit (escaped)
        # Set by the hook (integrations/tensors.py): logged tensors summed on their device.
        self.tensor_reducer: Callable[[list[Any]], tuple[float, int] | None] | None = None
        self.tensor_scalar: Callable[[Any], float | None] | None = None

    # -- wiring, called by integrations ------------------------------------------------

    def add_epoch_source(self, name: str, source: EpochSource) -> None:
        """Something that adds one block to every epoch record (e.g. `tf_memory`)."""
        self._epoch_sources[name] = source

    def add_fingerprint_source(self, name: str, source: EpochSource) -> None:
        """Something that adds one block to run_start's `env` (e.g. `tf_build`)."""
        self.setup.fingerprint_sources[name] = source

    def add_epoch_fields(self, name: str, source: EpochSource) -> None:
        """Something that adds top-level fields to every epoch record where the record has
        none of its own (e.g. a PyTorch loop's `lr` and `iterations`, which Keras' callback
        fills in for a fit)."""
        self._field_sources[name] = source

    def add_listener(self, callback: Callable[[dict[str, Any]], None], part: str = "record listener") -> None:
        """Call `callback(record)` after every record written (e.g. restore diagnostics
        following the run's own records); a failure disables `part`, not the others."""
        self._listeners.append((part, callback))

    def add_finding_listener(self, callback: Callable[[dict[str, Any]], None], part: str) -> None:
        """Call `callback(finding)` for each finding record of the run and each update of one
        (`finding_update`): written here, or made by the daemon and sent back (a repeat is
        possible: the console and exporters drop them, see analysis/ledger.Ledger)."""
        self._finding_listeners.append((part, callback))

    def before_epoch(self, callback: Callable[[], None], part: str) -> None:
        """Call `callback()` as each epoch begins, before anything of it (the console says
        its held lines there: Keras has ended the last epoch's line, not begun the next)."""
        self._openers.append((part, callback))

    def after_finish(self, callback: Callable[[int, str | None], None]) -> None:
        """Call `callback(epochs, trace_path)` once the run's trace is closed."""
        self._closers.append(callback)

    def on_finish(self, callback: Callable[[], None]) -> None:
        """Call `callback()` at the run's end, before run_end is written (e.g. to flush
        background work whose records belong in the trace)."""
        self._finishers.append(callback)

    def prepare_in_background(self) -> None:
        """On a thread, now: the imports and threads the run's start needs, so it pays for
        readings, not imports (CPU counted like the other threads'; harmless if late)."""
        threading.Thread(target=self._warm_up, name="epochwatch-warmup", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            with self._lock:
                if not self._started:
                    self.setup.prepare()  # and starts NVML's initialisation on its thread
                    self.detection.prepare(start_thread=True)
            warm_caches()
        except Exception:  # the run's start imports again and reports its own failures
            pass
        finally:
            self._warmup_cpu = time.thread_time()
            self.warmed_up.set()

    def watch(self, path: str | os.PathLike[str], role: str = "user") -> None:
        """Watch a directory's growth (bytes and files at every epoch end)."""
        with self._lock:
            self.setup.watch(path, role)

    def flush_analysis(self, timeout: float = 5.0) -> bool:
        """Wait until online detection has judged every epoch recorded so far."""
        return self.detection.flush(timeout)

    def next_fit_index(self) -> int:
        with self._lock:
            index = self._fits
            self._fits += 1
            return index

    @property
    def fits_started(self) -> int:
        """Fits (a Keras fit, an optimizer's first steps) started in this run so far."""
        return self._fits

    @property
    def started(self) -> bool:
        return self._started

    @property
    def remote_detection(self) -> bool:
        """True while a daemon runs the online detectors for this run (the hook need not)."""
        return bool(getattr(self._sink, "remote_detection", False))

    @property
    def sink_description(self) -> str | None:
        return self._sink.description if self._sink is not None else None

    @property
    def trace_path(self) -> str | None:
        """Where this run's trace is (the daemon's file when a daemon holds it), once started."""
        path = getattr(self._sink, "trace_path", None)
        return str(path) if path else None

    def await_daemon(self, timeout: float) -> None:
        """Off the training thread: until the daemon has said where this run's trace is
        (the hello is answered on the sender thread, after the run started)."""
        wait = getattr(self._sink, "wait_answer", None)
        if wait is not None:
            wait(timeout)

    @property
    def own_traces(self) -> tuple[str, ...]:
        """The user's other traces where the daemon keeps them (daemon/owntraces.py)."""
        return tuple(getattr(self._sink, "own_traces", ()))

    # -- run lifecycle ---------------------------------------------------------------

    def start(self, training: dict[str, Any] | None = None) -> bool:
        """Write run_start once; returns whether the run is being recorded."""
        with self._lock:
            if self._started:
                return self._sink is not None
            self._started = True
            t0 = time.perf_counter()
            self._start_perf = t0
            self._sink = self.guard.run("trace writer", lambda: open_sink(self.run_id, self.environ), None)
            if self._sink is None:
                return False
            if hasattr(self._sink, "on_finding"):  # the daemon's findings come back this way
                self._sink.on_finding = self._tell_finding
            self.setup.make_samplers()
            self.setup.prime()
            empty: dict[str, Any] = {}
            env = self.guard.run("fingerprint", self.setup.fingerprint, empty)
            rec = schema.record(
                schema.RUN_START,
                self.run_id,
                schema=schema.SCHEMA_VERSION,
                epochwatch=__version__,
                mode=getattr(self._sink, "mode", "embedded"),
                env=env,
            )
            if training:
                rec["training"] = training
            self.detection.prepare()
            background = self._background_cpu()
            rec["overhead_seconds"] = round(time.perf_counter() - t0 + background, 6)
            rec["overhead_background_seconds"] = round(background, 6)
            self.overhead_total += rec["overhead_seconds"]
            self._write(rec)
            self.detection.submit(rec)  # online detection's start, on its own thread
            self.setup.start_watching()
            return True

    def finish(self, ended: str, exc: BaseException | None = None, *, reopen: bool = False) -> None:
        """Write run_end and release everything; called once at interpreter exit.

        reopen=True (a notebook's fit ended, the kernel lives on): the next record starts
        a new run with a new id, so each fit is a run of its own, ended when it ended.
        """
        with self._lock:
            if self._finished or self._finishing or not self._started:
                return
            self._finishing = True
        self.guard.run("automatic epochs", self.auto.close, None)
        # Outside the lock: a finisher may wait for threads that still emit records (the
        # last saves' hashes), and the analysis thread writes the last findings: both lock.
        for callback in self._finishers if not reopen else ():
            self.guard.run("run end", callback, None)
        # The verdict on all the evidence, without waiting for persistence (not when a
        # daemon judges the run: it gives its own at the run's end).
        self.detection.close(final=not self.remote_detection)
        with self._lock:
            self._finished = True
            sink = self._sink
            if self._sink is not None:
                self.overhead_total += self._background_cpu()
                fields: dict[str, Any] = {
                    "ended": ended,
                    "epochs": self._epochs_written,
                    "seconds": round(time.perf_counter() - self._start_perf, 3),
                    "overhead_seconds": round(self.overhead_total, 6),
                    "overhead_background_seconds": round(self.overhead_background, 6),
                }
                if exc is not None:
                    fields["exception"] = type(exc).__name__
                    message = str(exc).strip().splitlines()
                    if message:
                        fields["message"] = message[0][:500]
                disabled = self.guard.disabled
                if disabled:
                    fields["disabled"] = disabled
                self._write(schema.record(schema.RUN_END, self.run_id, **fields))
            self._close()
            trace = getattr(sink, "trace_path", None)
            where, epochs = (str(trace) if trace else None), self._epochs_written
            for closer in self._closers:
                self.guard.run("run end", functools.partial(closer, epochs, where), None)
            if reopen:
                self._reopen()

    def escaped(self, exc: BaseException) -> None:
        """An exception that left a fit or a marked epoch. A `sys.exit(3)` from a callback
        never reaches sys.excepthook (the interpreter handles SystemExit), so the run read
        "completed" beside its own fit_end's "raised SystemExit": a non-zero exit seen here
        is how the run ended, unless something uncaught comes after it."""
        if isinstance(exc, SystemExit) and exc.code not in (None, 0):
            self.exit_seen = exc

    def forked(self) -> None:
        """In a forked child (multiprocessing's default start on Linux, os.fork): the parent's
        run is not its own. A fold per forked Process lost 2 of 3 folds: each child took the
        parent's run id, and the second found its trace made ("File exists"); a child of a
        started run would write into its parent's trace. The child drops what it inherited of
        the sink unflushed (the parent's to write), closing only its own copies of the
        sink's descriptors, and records, if it ever does, a run of its own under a new id.
        Its lock is new: another of the parent's threads may have held it at the fork."""
        self._lock = threading.RLock()
        sink, self._sink = self._sink, None
        if sink is not None:
            self.guard.run("fork", sink.close, None)
        self._reopen()

    def _reopen(self) -> None:
        """Back to before start(), with a new run id; watched directories carry over."""
        self.run_id = new_run_id()
        self._started = self._finished = self._finishing = False
        self._epochs_written = self._fits = 0
        self.setup.reopen()
        self.detection = OnlineDetection(self.guard, self._write_late)
        self.overhead_total = self._carry_overhead = 0.0

    def _close(self) -> None:
        self.setup.close()
        if self._sink is not None:
            self.guard.run("trace writer", self._sink.close, None)
            self._sink = None

    # -- records ---------------------------------------------------------------------

    def emit(self, type_: str, **fields: Any) -> None:
        """Write one record of any type, starting the run if needed. Never raises."""
        with self._lock:
            if not self._finished and self.start():
                self._emit_locked(type_, **fields)

    def _emit_locked(self, type_: str, **fields: Any) -> None:
        self._write(schema.record(type_, self.run_id, **fields))

    def _write_late(self, rec: dict[str, Any]) -> None:
        """From another thread (online detection's findings): written while the run lasts."""
        with self._lock:
            if not self._finished:
                self._write(rec)

    def _write_judged(self, rec: dict[str, Any]) -> None:
        """An epoch or interval: written, then judged on the analysis thread (when a daemon
        is attached it runs the detectors; this process then only keeps the record)."""
        self._write(rec)
        self.detection.submit(rec, judge=not self.remote_detection)

    def _write(self, rec: dict[str, Any]) -> None:
        sink = self._sink
        if sink is None or not self.guard.enabled("trace writer"):
            return
        try:
            sink.write(rec)
        except Exception as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.guard.disable(
                "trace writer", f"cannot write the trace ({reason}); training continues untraced"
            )
            self._sink = None
            return
        if rec["type"] not in _NOT_FED:
            self.detection.submit(rec)
        for part, listener in self._listeners:
            self.guard.run(part, functools.partial(listener, rec), None)
        if rec["type"] in schema.FINDINGS:
            self._tell_finding(rec)

    def _tell_finding(self, rec: dict[str, Any]) -> None:
        for part, listener in self._finding_listeners:
            self.guard.run(part, functools.partial(listener, rec), None)

    # -- epochs ----------------------------------------------------------------------

    def begin_epoch(self, number: int, source: str, fit: int | None = None) -> None:
        t0 = time.perf_counter()
        for part, opener in self._openers:
            self.guard.run(part, opener, None)
        with self._lock:
            starting = not self._started
            if not self.start():
                return
            if source != "auto" and self.epoch_source == "auto":
                self.auto.fit_began()  # a fit inside a loop that marks no epochs: ours is written
            self.auto.epoch_changed()
            outer = self._epoch if self._epoch is not None and self._epoch.source == "loop" else None
            if outer is not None and source == "loop":
                outer = None  # a loop epoch inside a loop epoch: the newer one wins, as before
            # The run's set-up is run_start's overhead: not charged to the first epoch as well.
            t1 = time.perf_counter() if starting else t0
            self._epoch = _Epoch(number, source, fit, time.time(), t1, outer=outer)
            self._epoch.metrics = LoggedMetrics(self._reduce_logged, self.tensor_scalar)
            self._epoch.overhead = self._carry_overhead + (time.perf_counter() - t1)
            self._carry_overhead = 0.0
            self.clock.begin_epoch(t0)

    @property
    def in_epoch(self) -> bool:
        return self._epoch is not None

    @property
    def epoch_source(self) -> str | None:
        """Whose the open epoch is ("keras", "loop", "auto"), or None outside one."""
        epoch = self._epoch
        return epoch.source if epoch is not None else None

    def add_overhead(self, seconds: float) -> None:
        epoch = self._epoch
        if epoch is not None:
            epoch.overhead += seconds
        else:
            self._carry_overhead += seconds

    def log(self, metrics: dict[str, Any]) -> None:
        """Accumulate metric values for the open epoch; tensors are kept, not synced, until its end."""
        epoch = self._epoch
        if epoch is not None:
            epoch.metrics.add(metrics)

    def abandon_epoch(self, source: str | None = None) -> None:
        """The epoch's body raised: it did not finish, so it gets no record (only when it
        is `source`'s, when given); a loop epoch it was nested in stays open."""
        with self._lock:
            epoch = self._epoch
            if epoch is None or (source is not None and epoch.source != source):
                return
            self._epoch = epoch.outer
            self.clock.end_epoch(0.0)
            self.auto.epoch_changed()

    def end_epoch(self, fields: dict[str, Any] | None = None, end_perf: float | None = None) -> None:
        """Close the open epoch and write its record, with every sampler's block."""
        t0 = time.perf_counter()
        with self._lock:
            epoch = self._epoch
            self.auto.epoch_changed()
            if epoch is None or self._sink is None:
                self._epoch = None
                return
            self._epoch = epoch.outer  # a fit nested in a loop epoch: the loop epoch goes on
            end = end_perf if end_perf is not None else t0
            self.clock.end_epoch(end - epoch.start_perf)
            rec = schema.record(schema.EPOCH, self.run_id, epoch=epoch.number)
            if epoch.outer is not None:
                rec["loop_epoch"] = epoch.outer.number
            if epoch.fit is not None:
                rec["fit"] = epoch.fit
            rec["source"] = epoch.source
            rec["start"] = round(epoch.start_wall, 6)
            rec["end"] = round(epoch.start_wall + (end - epoch.start_perf), 6)
            rec["seconds"] = round(end - epoch.start_perf, 6)
            if fields:
                rec.update(fields)
            if epoch.steps:  # counted (hook.step(), the updates) before logged (hook.log())
                rec.setdefault("steps", len(epoch.steps))
                between = step_summary(epoch.steps, 0, len(epoch.steps)) if epoch.source == "loop" else None
                if between:  # between step starts, as a fit's epoch says them
                    rec.setdefault("step_seconds", between)
            if epoch.inference is not None:
                rec["loop_inference"] = epoch.inference.block()
            logged = epoch.metrics.means()
            if logged:
                rec["metrics"] = {**logged, **rec.get("metrics", {})}
                rec.setdefault("steps", epoch.metrics.steps)
            for sampler in self.setup.samplers:
                block = self.guard.run(f"{sampler.name} sampler", sampler.sample, None)
                if block:
                    rec[sampler.name] = block
            for name, source in self._epoch_sources.items():
                block = self.guard.run(name, source, None)
                if block:
                    rec[name] = block
            for name, source in self._field_sources.items():
                for key, value in (self.guard.run(name, source, None) or {}).items():
                    rec.setdefault(key, value)
            if self.retrace_ledger is not None:
                block = self.guard.run("retrace tracking", self.retrace_ledger.drain, None)
                if block:
                    rec["retraces"] = block
            # The training thread's time (wall: waits count) plus the CPU the hook's own
            # threads used since the last record (analysis, samplers, sender, watcher).
            background = self._background_cpu()
            overhead = epoch.overhead + (time.perf_counter() - t0) + background
            rec["overhead_seconds"] = round(overhead, 6)
            rec["overhead_background_seconds"] = round(background, 6)
            if LOOKING.since_last("epoch"):  # what the look left in memory is the hook's
                rec["looking_inside"] = True
            self._write_judged(rec)
            self._epochs_written += 1
            self.overhead_total += overhead

    def _reduce_logged(self, values: list[Any]) -> tuple[float, int] | None:
        reduce = self.tensor_reducer
        return self.guard.run("tensor metrics", lambda: reduce(values), None) if reduce else None

    # -- steps and intervals -------------------------------------------------------------

    def step(self) -> None:
        """One step of a custom loop's open epoch began (hook.step()): a clock read, an
        append and a compare, and an interval record when one is due. Outside an epoch of
        the script's own, automatic epochs take it (and count no updates of their own)."""
        epoch = self._epoch
        if (epoch is None or epoch.source == "auto") and self.auto.script_step():
            return
        if epoch is None:
            return
        if not self.auto.scripted and epoch.source == "loop":  # the updates count no more steps
            self.auto.script_owns(epoch)
        now = time.perf_counter()
        epoch.steps.append(now)
        if now >= self.clock.due:
            self.interval(epoch.steps, now)

    def interval(self, starts: list[float], now: float) -> None:
        """Write an `interval` record for the open epoch's steps since the last one (its
        step start times so far, the newest being the step that begins at `now`)."""
        with self._lock:
            epoch = self._epoch
            if epoch is None or self._sink is None:
                self.clock.end_epoch(0.0)
                return
            # Guarded: the step hooks call this on the training thread, outside any guard.
            rec = self.guard.run(
                "intervals", lambda: self.intervals.record(epoch, self.run_id, starts, now), None
            )
            if rec is not None:
                if self.retrace_ledger is not None:
                    block = self.guard.run("retrace tracking", self.retrace_ledger.interval, None)
                    if block:
                        rec["retraces"] = block
                self._write_judged(rec)

    def _background_cpu(self) -> float:
        """CPU seconds the hook's own threads used since the last call (to be charged now):
        each part that runs a thread keeps `cpu_seconds`, its thread's `time.thread_time()`
        after each piece of work, so the sum only grows."""
        sink = float(getattr(self._sink, "cpu_seconds", 0.0) or 0.0)
        total = self._warmup_cpu + sink + self.detection.cpu_seconds + self.setup.cpu_seconds
        new = max(0.0, total - self._background_counted)
        self._background_counted = max(total, self._background_counted)
        self.overhead_background += new
        return new
