"""The Recorder: one per process, the only path from the hook's integrations to the trace.

Integrations tell it what happened (an epoch began, a fit started, a directory is worth
watching); it adds what the samplers see, measures its own cost, and writes records in
order through a Sink. Every public method is safe to call from training code: failures
are reported once through the Guard and switch off only the failing part.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epochwatch import __version__, environment
from epochwatch.guard import Guard, say
from epochwatch.intervals import IntervalClock, step_summary
from epochwatch.samplers.base import Sampler
from epochwatch.trace import schema
from epochwatch.trace.sink import Sink, open_sink

EpochSource = Callable[[], "dict[str, Any] | None"]

# Online detection (about 0.3 ms a step here) gets a starting allowance, then may take
# this share of the training time: it runs at every epoch of short runs and of runs whose
# epochs last more than ~0.1 s, and is thinned out only on long runs of tiny epochs.
ANALYSIS_SHARE = 0.005
ANALYSIS_START_CREDIT = 0.05
ANALYSIS_CREDIT_CAP = 1.0
_NOT_FED = frozenset({schema.EPOCH, schema.INTERVAL, *schema.FINDINGS, schema.RUN_START, schema.RESTORE})


def new_run_id() -> str:
    """`<script>-<UTC time>-<pid>-<random>`: sortable, readable, unique across hosts."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    stem = Path(argv0).stem if argv0 not in ("-c", "-m") else "python"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return schema.safe_run_id(f"{stem}-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:6]}")


@dataclass
class _Epoch:
    number: int
    source: str
    fit: int | None
    start_wall: float
    start_perf: float
    overhead: float = 0.0
    outer: _Epoch | None = None  # the custom-loop epoch a fit's epoch is nested in
    interval_seconds: float = 0.0  # of this epoch's intervals (their analysis earned its credit)
    steps: list[float] = field(default_factory=list)  # step starts from hook.step() (custom loops)
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    pending: dict[str, list[Any]] = field(default_factory=dict)


class Recorder:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.guard = Guard()
        self.run_id = new_run_id()
        self.trace_dir = environment.trace_dir(self.environ)
        self._lock = threading.RLock()
        self._sink: Sink | None = None
        self._started = False
        self._finished = False
        self._finishing = False
        self._start_perf = 0.0
        self._epoch: _Epoch | None = None
        self._epochs_written = 0
        self._fits = 0
        self._samplers: list[Sampler] = []
        self._epoch_sources: dict[str, EpochSource] = {}
        self._fingerprint_sources: dict[str, EpochSource] = {}
        self._retraces: Any = None
        self._dirs: Any = None
        self._watched: dict[str, str] = {}
        self._pending_watches: list[tuple[str, str]] = []
        self._analyzer: Any = None
        self._analysis_credit = ANALYSIS_START_CREDIT
        self._analysis_cost = 0.0
        self._listeners: list[tuple[str, Callable[[dict[str, Any]], None]]] = []
        self._finishers: list[Callable[[], None]] = []
        self._carry_overhead = 0.0
        self.overhead_total = 0.0
        self.clock = IntervalClock()  # when the open epoch's next interval record is due
        self._intervals = 0
        self.clear_session_calls = 0  # keras.backend.clear_session() calls (models_in_loop)
        self.models_seen = 0  # distinct model objects fitted (models_in_loop)

    # -- wiring, called by integrations ------------------------------------------------

    def add_epoch_source(self, name: str, source: EpochSource) -> None:
        """Something that adds one block to every epoch record (e.g. `tf_memory`)."""
        self._epoch_sources[name] = source

    def add_fingerprint_source(self, name: str, source: EpochSource) -> None:
        """Something that adds one block to run_start's `env` (e.g. `tf_build`)."""
        self._fingerprint_sources[name] = source

    def set_retrace_ledger(self, ledger: Any) -> None:
        self._retraces = ledger

    def add_listener(self, callback: Callable[[dict[str, Any]], None], part: str = "record listener") -> None:
        """Call `callback(record)` after every record written (e.g. restore diagnostics
        following the run's own records); a failure disables `part`, not the others."""
        self._listeners.append((part, callback))

    def on_finish(self, callback: Callable[[], None]) -> None:
        """Call `callback()` at the run's end, before run_end is written (e.g. to flush
        background work whose records belong in the trace)."""
        self._finishers.append(callback)

    def next_fit_index(self) -> int:
        with self._lock:
            index = self._fits
            self._fits += 1
            return index

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
            self._setup_samplers()
            # Prime: a first reading now gives epoch 0 its deltas (CPU time) and pays NVML's
            # initialisation here rather than inside the first epoch.
            for sampler in self._samplers:
                self.guard.run(f"{sampler.name} sampler", sampler.sample, None)
            empty: dict[str, Any] = {}
            env = self.guard.run("fingerprint", self._fingerprint, empty)
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
            # Set up online detection now, outside any epoch (it imports the analysis).
            self._analyzer = self.guard.run("online detection", lambda: self._new_analyzer(rec), None)
            rec["overhead_seconds"] = round(time.perf_counter() - t0, 6)
            self.overhead_total += rec["overhead_seconds"]
            self._write(rec)
            self._start_watching()
            return True

    def finish(self, ended: str, exc: BaseException | None = None) -> None:
        """Write run_end and release everything; called once at interpreter exit."""
        with self._lock:
            if self._finished or self._finishing:
                return
            self._finishing = True
        # Outside the lock: a finisher may wait for other threads that still emit records
        # (the last saves' hashes), and they need the lock to write them.
        for callback in self._finishers:
            self.guard.run("run end", callback, None)
        with self._lock:
            self._finished = True
            analyzer = self._analyzer
            if self._sink is not None and analyzer is not None and not self.remote_detection:
                # The verdict on all the evidence, without waiting for persistence.
                finish = getattr(analyzer, "finish", None)
                final: list[dict[str, Any]] = self.guard.run("online detection", finish, []) if finish else []
                for finding in final or []:
                    self._write(finding)
            if self._sink is not None:
                fields: dict[str, Any] = {
                    "ended": ended,
                    "epochs": self._epochs_written,
                    "seconds": round(time.perf_counter() - self._start_perf, 3),
                    "overhead_seconds": round(self.overhead_total, 6),
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

    def _close(self) -> None:
        for sampler in self._samplers:
            self.guard.run(f"{sampler.name} sampler", sampler.close, None)
        if self._dirs is not None:
            self.guard.run("directory watching", self._dirs.close, None)
        if self._sink is not None:
            self.guard.run("trace writer", self._sink.close, None)
            self._sink = None

    # -- records ---------------------------------------------------------------------

    def emit(self, type_: str, **fields: Any) -> None:
        """Write one record of any type, starting the run if needed. Never raises."""
        with self._lock:
            if self._finished or not self.start():
                return
            self._write(schema.record(type_, self.run_id, **fields))

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
        analyzer = self._analyzer
        # Epochs go through _analyze; restores are judged by the restore watcher
        # (checkpoints/resume.py), which has the parent run at hand: feeding them here too
        # would say each restore finding twice.
        if analyzer is not None and rec["type"] not in _NOT_FED:
            self.guard.run("online detection", lambda: analyzer.add(rec), None)
        for part, listener in self._listeners:
            self.guard.run(part, functools.partial(listener, rec), None)

    # -- epochs ----------------------------------------------------------------------

    def begin_epoch(self, number: int, source: str, fit: int | None = None) -> None:
        t0 = time.perf_counter()
        with self._lock:
            if not self.start():
                return
            outer = self._epoch if self._epoch is not None and self._epoch.source == "loop" else None
            if outer is not None and source == "loop":
                outer = None  # a loop epoch inside a loop epoch: the newer one wins, as before
            self._epoch = _Epoch(number, source, fit, time.time(), t0, outer=outer)
            self._epoch.overhead = self._carry_overhead + (time.perf_counter() - t0)
            self._carry_overhead = 0.0
            self.clock.begin_epoch(t0)

    @property
    def in_epoch(self) -> bool:
        return self._epoch is not None

    def add_overhead(self, seconds: float) -> None:
        epoch = self._epoch
        if epoch is not None:
            epoch.overhead += seconds
        else:
            self._carry_overhead += seconds

    def log(self, metrics: dict[str, Any]) -> None:
        """Accumulate metric values for the open epoch; tensors are kept, not synced, until its end."""
        epoch = self._epoch
        if epoch is None:
            return
        for key, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                epoch.sums[key] = epoch.sums.get(key, 0.0) + float(value)
                epoch.counts[key] = epoch.counts.get(key, 0) + 1
            else:
                pending = epoch.pending.setdefault(key, [])
                pending.append(value)
                if len(pending) >= 1024:  # bound memory: fold (this converts, so it may sync once)
                    self._fold(epoch, key)

    @staticmethod
    def _fold(epoch: _Epoch, key: str) -> None:
        for value in epoch.pending.pop(key, []):
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            epoch.sums[key] = epoch.sums.get(key, 0.0) + number
            epoch.counts[key] = epoch.counts.get(key, 0) + 1

    def abandon_epoch(self, source: str | None = None) -> None:
        """The epoch's body raised: it did not finish, so it gets no record (only when it
        is `source`'s, when given); a loop epoch it was nested in stays open."""
        with self._lock:
            epoch = self._epoch
            if epoch is None or (source is not None and epoch.source != source):
                return
            self._epoch = epoch.outer
            self.clock.end_epoch(0.0)

    # -- sub-epoch intervals ---------------------------------------------------------

    def step(self) -> None:
        """One step of a custom loop's open epoch began (hook.step()): a clock read, an
        append and a compare, and an interval record when one is due."""
        epoch = self._epoch
        if epoch is None:
            return
        now = time.perf_counter()
        epoch.steps.append(now)
        if now >= self.clock.due:
            self.interval(epoch.steps, now)

    def interval(self, starts: list[float], now: float) -> None:
        """Write an `interval` record for the steps since the last one: `starts` are the
        epoch's step start times so far, the newest being the step that begins at `now`."""
        t0 = time.perf_counter()
        with self._lock:
            epoch = self._epoch
            if epoch is None or self._sink is None:
                self.clock.end_epoch(0.0)
                return
            done = len(starts) - 1  # steps completed: the newest has only begun
            seconds, steps, first = self.clock.fire(now, done)
            if steps <= 0:
                return
            rec = schema.record(schema.INTERVAL, self.run_id, epoch=epoch.number, index=self._intervals)
            self._intervals += 1
            if epoch.fit is not None:
                rec["fit"] = epoch.fit
            rec["source"] = epoch.source
            rec["step"] = done
            rec["steps"] = steps
            rec["seconds"] = round(seconds, 6)
            spread = step_summary(starts, first, done)
            if spread:
                rec["step_seconds"] = spread
            rss = self.guard.run("host sampler", _own_rss, None)
            if rss is not None:
                rec["host"] = {"rss_bytes": rss}
            if self._dirs is not None:
                dirs = self.guard.run("directory watching", self._dirs.totals, None)
                if dirs:
                    rec["dirs"] = dirs
            epoch.interval_seconds += seconds
            findings = self._analyze(rec)
            cost = time.perf_counter() - t0
            rec["overhead_seconds"] = round(cost, 6)
            epoch.overhead += cost
            self._write(rec)
            for finding in findings:
                self._write(finding)

    def end_epoch(self, fields: dict[str, Any] | None = None, end_perf: float | None = None) -> None:
        """Close the open epoch and write its record, with every sampler's block."""
        t0 = time.perf_counter()
        with self._lock:
            epoch = self._epoch
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
            for key in list(epoch.pending):
                self._fold(epoch, key)
            if epoch.counts:
                logged = {k: epoch.sums[k] / epoch.counts[k] for k in epoch.counts}
                rec["metrics"] = {**logged, **rec.get("metrics", {})}
                rec.setdefault("steps", max(epoch.counts.values()))
            if epoch.steps:
                rec.setdefault("steps", len(epoch.steps))
            for sampler in self._samplers:
                block = self.guard.run(f"{sampler.name} sampler", sampler.sample, None)
                if block:
                    rec[sampler.name] = block
            for name, source in self._epoch_sources.items():
                block = self.guard.run(name, source, None)
                if block:
                    rec[name] = block
            if self._retraces is not None:
                block = self.guard.run("retrace tracking", self._retraces.drain, None)
                if block:
                    rec["retraces"] = block
            findings = self._analyze(rec, earned=float(rec.get("seconds", 0.0)) - epoch.interval_seconds)
            overhead = epoch.overhead + (time.perf_counter() - t0)
            rec["overhead_seconds"] = round(overhead, 6)
            self._write(rec)
            for finding in findings:
                self._write(finding)
            self._epochs_written += 1
            self.overhead_total += overhead

    def _analyze(self, rec: dict[str, Any], earned: float | None = None) -> list[dict[str, Any]]:
        """Online detection in this process, within ANALYSIS_SHARE of the training time.

        Every epoch is recorded; detectors run when the epochs since the last run have
        earned their cost (on epochs of a second or more, that is every epoch). With a
        daemon attached, the daemon detects and this process only keeps the record.
        """
        analyzer = self._analyzer
        if analyzer is None or not self.guard.enabled("online detection"):
            return []
        seconds = float(rec.get("seconds", 0.0)) if earned is None else max(0.0, earned)
        self._analysis_credit = min(self._analysis_credit + seconds * ANALYSIS_SHARE, ANALYSIS_CREDIT_CAP)
        evaluate = not self.remote_detection and self._analysis_credit >= self._analysis_cost
        t0 = time.perf_counter()
        found: list[dict[str, Any]] = self.guard.run(
            "online detection", lambda: analyzer.add(rec, evaluate=evaluate), []
        )
        if evaluate:
            self._analysis_cost = time.perf_counter() - t0
            self._analysis_credit -= self._analysis_cost
        return found

    def _new_analyzer(self, run_start: dict[str, Any]) -> Any:
        try:
            from epochwatch.analysis.online import OnlineAnalyzer
        except ImportError:
            self.guard.disable("online detection", "analysis package not available")
            return None
        analyzer = OnlineAnalyzer(run_start)
        analyzer.updates = True  # episodes' updates go to the trace too
        return analyzer

    # -- directories -----------------------------------------------------------------

    def watch(self, path: str | os.PathLike[str], role: str = "user") -> None:
        """Watch a directory's growth (bytes and files at every epoch end)."""
        absolute = os.path.abspath(os.fspath(path))
        with self._lock:
            if absolute in self._watched:
                return
            self._watched[absolute] = role
            if self._dirs is None:
                self._pending_watches.append((absolute, role))
                return
            self._watch_now(absolute, role)

    def _watch_now(self, path: str, role: str) -> None:
        ok = self.guard.run("directory watching", lambda: self._dirs.watch(path, role), False)
        if ok is not False:
            self._write(schema.record("watch", self.run_id, path=path, role=role))

    def _start_watching(self) -> None:
        if not self.guard.enabled("directory watching"):
            return

        def make() -> Any:
            from epochwatch.samplers.dirs import DirsSampler, DirWatcher

            watcher = DirWatcher()
            self._samplers.append(DirsSampler(watcher))
            return watcher

        self._dirs = self.guard.run("directory watching", make, None)
        if self._dirs is None:
            return
        defaults = [(tempfile.gettempdir(), "temp")]
        extra = self.environ.get(environment.EPOCHWATCH_WATCH, "")
        defaults += [(p, "user") for p in extra.split(os.pathsep) if p.strip()]
        for path, role in defaults:
            absolute = os.path.abspath(path)
            if absolute not in self._watched:
                self._watched[absolute] = role
                self._pending_watches.append((absolute, role))
        pending, self._pending_watches = self._pending_watches, []
        for path, role in pending:
            self._watch_now(path, role)

    # -- setup -----------------------------------------------------------------------

    def _setup_samplers(self) -> None:
        pid = os.getpid()

        def host() -> Sampler:
            from epochwatch.samplers.host import HostSampler

            return HostSampler(pid)

        def gpu() -> Sampler:
            from epochwatch.samplers.nvml import NvmlSampler

            return NvmlSampler(pid, nvml=_injected_nvml())

        for name, make in (("host", host), ("gpu", gpu)):
            sampler = self.guard.run(f"{name} sampler", make, None)
            if sampler is not None:
                self._samplers.append(sampler)

    def _fingerprint(self) -> dict[str, Any]:
        from epochwatch.fingerprint import environment

        limit = None
        try:
            from epochwatch.samplers.host import memory_limit_bytes

            limit = memory_limit_bytes()
        except ImportError:
            pass
        env = environment(limit)
        for sampler in self._samplers:
            inventory = getattr(sampler, "inventory", None)
            if callable(inventory):
                inv = self.guard.run(f"{sampler.name} sampler", inventory, None)
                if inv:
                    env.update(inv)
        for name, source in self._fingerprint_sources.items():
            block = self.guard.run(name, source, None)
            if block:
                env[name] = block
        return env


def _own_rss() -> int | None:
    from epochwatch.samplers.host import own_rss_bytes

    return own_rss_bytes()


def _injected_nvml() -> Any:
    """Tests on machines without GPUs inject a pynvml-shaped module by name (EPOCHWATCH_FAKE_NVML).

    This is the one seam we cannot reach for real here; it is never set in production.
    """
    name = os.environ.get(environment.EPOCHWATCH_FAKE_NVML)
    if not name:
        return None
    import importlib

    try:
        return importlib.import_module(name)
    except Exception as exc:
        say(f"EPOCHWATCH_FAKE_NVML={name} could not be imported: {exc}")
        return None
