"""One Keras fit as the hook follows it: `FitWatch` holds what the fit is (its index, its
arguments, the step starts of the open epoch, the input probe, the user's callbacks'
clocks) and turns Keras' callback hooks into the Recorder's epochs and intervals.

Keras calls it through its own `LambdaCallback` (`keras_callback`), so this class does not
depend on which Keras (3, or tf_keras) is in the process, and tests can drive it directly.
"""

from __future__ import annotations

import functools
import itertools
import time
from typing import TYPE_CHECKING, Any

from epochwatch.explain.anchor import STEPS
from epochwatch.integrations import input_wait
from epochwatch.integrations.batch_clocks import BatchClocks
from epochwatch.integrations.keras_fit import ModelLoop, fit_batch_size, fit_block, user_callbacks
from epochwatch.integrations.keras_reads import RateReader, StepCounter, number
from epochwatch.intervals import spread
from epochwatch.samplers.own_rss import own_rss_bytes

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "keras integration"


def keras_callback(callbacks: Any, watch: FitWatch) -> Any:
    """The Keras callback that calls `watch` (`callbacks` is `keras.callbacks`): only begin
    and end hooks, never a `*_batch_end` (that would switch off asynchronous dispatch)."""
    callback = callbacks.LambdaCallback(
        on_train_begin=watch.on_train_begin,
        on_epoch_begin=watch.on_epoch_begin,
        on_epoch_end=watch.on_epoch_end,
        on_train_batch_begin=watch.on_train_batch_begin,
        on_test_begin=watch.on_test_begin,
        on_test_end=watch.on_test_end,
    )
    watch.callback = callback
    return callback


class FitWatch:
    """Feeds the Recorder from one fit; made per fit call, before Keras starts it."""

    def __init__(
        self,
        recorder: Recorder,
        loop: ModelLoop,
        arguments: dict[str, Any],
        step_cost: float,
        *,
        input_timing: bool = True,
    ) -> None:
        self.recorder = recorder
        self.loop = loop
        self.arguments = arguments  # fit's arguments, bound to its signature
        self.user_callbacks = user_callbacks(arguments.get("callbacks"))  # as given, before ours join
        self.batch_size = fit_batch_size(arguments)  # fixed for the fit: read once, not per epoch
        self.step_cost = step_cost
        self.callback: Any = None  # the Keras callback calling this (its model and params)
        self.fit: int | None = None
        self.step_starts: list[float] = []
        self.epochs_completed = 0
        self._clock = recorder.clock
        self._val_start: float | None = None
        self._val_seconds = 0.0
        self._train_end: float | None = None
        self._fit_start = time.perf_counter()
        self._fit_cpu = time.process_time()  # the process's CPU time (all threads) at the fit's start
        self._epoch_start = self._fit_start
        self._input = self._input_probe(arguments.get("x")) if input_timing else None
        self._marks: list[tuple[int, float]] = []  # (slot, when that callback's on_epoch_end began)
        self._clocked: list[str] = []  # class name of the callback after each clock
        self._batch_clocks = BatchClocks()  # the user's callbacks' batch hooks, timed
        self._rate = RateReader()
        self._steps = StepCounter()
        self._per_call: int | None = None
        # The model attribute of the optimizer the fit trains with (keras_fit.training_optimizer):
        # `optimizer`, or a GAN's own (`d_optimizer`) where compile() left Keras's default there.
        self._optimizer_attribute = "optimizer"

    def _input_probe(self, x: Any) -> input_wait.InputProbe | None:
        """Times the fit's data adapters (input_wait.py); none without input or timing (the
        Guard's run gives None once input timing is off)."""
        return None if x is None else self.recorder.guard.run("input timing", input_wait.InputProbe, None)

    @property
    def model(self) -> Any:
        return getattr(self.callback, "model", None)

    @property
    def params(self) -> dict[str, Any]:
        return getattr(self.callback, "params", None) or {}

    def clocked(self, callbacks: Any, user: list[Any]) -> list[Any]:
        """The user's callbacks, each preceded by a clock that times its on_epoch_end, and
        their batch hooks clocked (batch_clocks.py)."""
        self._batch_clocks.wrap(user)
        out: list[Any] = []
        for cb in user:
            slot = len(self._clocked)
            out.append(callbacks.LambdaCallback(on_epoch_end=functools.partial(self._mark, slot)))
            self._clocked.append(type(cb).__name__[:120])
            out.append(cb)
        return out

    def _mark(self, slot: int, epoch: int, logs: Any = None) -> None:
        self._marks.append((slot, time.perf_counter()))

    # -- fit ---------------------------------------------------------------------------

    def on_train_begin(self, logs: Any = None) -> None:
        t0 = time.perf_counter()
        setup = 0.0
        recorder = self.recorder

        def begin() -> None:
            nonlocal setup
            self.fit = recorder.next_fit_index()
            block = fit_block(self, self.fit, recorder.guard)
            for facts in recorder.auto.every_fit_facts.values():
                block.update(facts())
            self._optimizer_attribute = block.get("optimizer", {}).get("attribute") or "optimizer"
            t_start = time.perf_counter()
            recorder.start(training=block)
            setup = time.perf_counter() - t_start  # the run's set-up: run_start accounts for it
            recorder.emit("fit_start", **block)
            for path, role in block.get("watched", {}).items():
                recorder.watch(path, role)

        recorder.guard.run(PART, begin, None)
        input_wait.activate(self._input)
        STEPS.active = True  # a memory slice may start at a step, not at a predicted time
        recorder.add_overhead(time.perf_counter() - t0 - setup)

    def fit_finished(self, exc: BaseException | None) -> None:
        recorder = self.recorder
        if exc is not None:
            recorder.escaped(exc)
        STEPS.active = False
        STEPS.loop_ended()
        self._batch_clocks.unwrap()
        # The bound arguments hold the fit's arrays and its callback list, which holds this
        # watch: a reference cycle that kept every fit's x and y alive until a full garbage
        # collection (6 MiB per fit on fresh 12.8 MB arrays, bench/fit_footprint.py).
        self.arguments = {}
        if self._input is not None:
            input_wait.activate(None)
            self._input.close()
            self._input = None
        if recorder.in_epoch:
            recorder.abandon_epoch("keras")
        if self.fit is None:
            return
        fields: dict[str, Any] = {
            "fit": self.fit,
            "epochs_completed": self.epochs_completed,
            "seconds": round(time.perf_counter() - self._fit_start, 6),
            # ... and its CPU time: a fit slower on a busier host took no more CPU (slowdown)
            "cpu_seconds": round(time.process_time() - self._fit_cpu, 6),
        }
        rss = own_rss_bytes()
        if rss is not None:
            fields["rss_bytes"] = rss  # the memory floor after each fit (models_in_loop)
        # ... and what the hook holds (recorder/detection.py)
        fields["hook_bytes"] = recorder.guard.run(PART, recorder.detection.footprint_bytes, None)
        if exc is None:
            fields["ended"] = "completed"
        elif isinstance(exc, KeyboardInterrupt):
            fields["ended"] = "interrupted"
        else:
            fields["ended"] = "raised"
            fields["exception"] = type(exc).__name__
        recorder.emit("fit_end", **fields)
        if recorder.per_fit_runs:  # a notebook: the fit was the run; the kernel lives on
            recorder.finish(fields["ended"], reopen=True)

    # -- epochs ------------------------------------------------------------------------

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.step_starts = []
        self._marks.clear()
        self._batch_clocks.take()  # what ran between epochs is no epoch's
        self._val_start = None
        self._val_seconds = 0.0
        self._train_end = None
        self.recorder.guard.run(PART, lambda: self.recorder.begin_epoch(epoch, "keras", self.fit), None)
        self._epoch_start = time.perf_counter()
        if self._input is not None:
            self._input.begin_epoch(self._epoch_start)

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        now = time.perf_counter()
        starts = self.step_starts
        starts.append(now)
        if batch >= STEPS.at:  # an armed memory slice or profiler capture starts (explain/anchor.py)
            STEPS.fire()
        if now >= self._clock.due:  # a sub-epoch interval is due (a few times per epoch at most)
            self.recorder.interval(starts, now)

    def on_test_begin(self, logs: Any = None) -> None:
        now = time.perf_counter()
        if self._train_end is None:
            self._train_end = now
            if self._input is not None:
                self._input.end_training()
        self._val_start = now

    def on_test_end(self, logs: Any = None) -> None:
        if self._val_start is not None:
            self._val_seconds += time.perf_counter() - self._val_start
            self._val_start = None

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        recorder = self.recorder
        end = time.perf_counter()
        fields = recorder.guard.run(PART, lambda: self.epoch_fields(logs, end), None)
        recorder.add_overhead(len(self.step_starts) * self.step_cost + (time.perf_counter() - end))
        recorder.guard.run(PART, lambda: recorder.end_epoch(fields or {}, end_perf=end), None)
        self.epochs_completed += 1

    def epoch_fields(self, logs: Any, end: float) -> dict[str, Any]:
        """The epoch record's fields from Keras: steps and their spread, validation and
        callback time, metrics, the optimizer's numbers, throughput and the input wait."""
        # Training ends at validation or, without it, when the first callback's on_epoch_end
        # starts: the callbacks' own time is neither a step nor a wait for input.
        train_end = self._train_end or (self._marks[0][1] if self._marks else end)
        steps, per_call = self._steps_done()
        fields: dict[str, Any] = {"steps": steps}
        if self.step_starts:
            fields["step_seconds"] = _step_spread(self.step_starts, train_end, per_call)
        if self._val_seconds:
            fields["val_seconds"] = round(self._val_seconds, 6)
        callbacks = self._callback_times(end)
        if callbacks:
            fields["callbacks"] = callbacks
        metrics = _numbers(logs)
        if metrics:
            fields["metrics"] = metrics
        fields.update(self._optimizer_fields(steps, max(0.0, train_end - self._epoch_start)))
        if self.batch_size is not None:
            fields["batch_size"] = self.batch_size
        if steps and train_end > self._epoch_start:
            fields["steps_per_second"] = round(steps / (train_end - self._epoch_start), 3)
        probe = self._input
        if probe is not None:
            first = self.step_starts[0] if self.step_starts else None
            last = self.step_starts[-1] if self.step_starts else None
            wait = self.recorder.guard.run(
                "input timing", lambda: probe.epoch_fields(train_end, steps, last, first), None
            )
            if wait:
                fields.update(wait)
        return fields

    def _steps_done(self) -> tuple[int, int]:
        """(train steps this epoch, steps per call). `steps_per_execution` is a plain int in
        Keras 3, a (mirrored) tf.Variable in tf_keras: fixed for a fit, so read once (a
        variable read costs 0.1-0.2 ms in a training process)."""
        if self._per_call is None:
            self._per_call = max(1, int(number(lambda: getattr(self.model, "steps_per_execution", 1)) or 1))
        steps = len(self.step_starts) * self._per_call
        total = self.params.get("steps")
        if isinstance(total, int) and total > 0:
            steps = min(steps, total)
        return steps, self._per_call

    def _optimizer_fields(self, steps: int, train_seconds: float) -> dict[str, Any]:
        optimizer = getattr(self.model, self._optimizer_attribute, None)
        if optimizer is None:
            return {}
        out: dict[str, Any] = {}
        lr = self._rate.read(optimizer, train_seconds)
        if lr is not None:
            out["lr"] = lr
        iterations = self._steps.read(optimizer, steps, train_seconds)
        if iterations is not None:
            out["iterations"] = iterations
        return out

    def _callback_times(self, end: float) -> dict[str, Any] | None:
        """{"seconds": total, "by_class": {name: seconds}} for this epoch's on_epoch_end calls;
        "batch_seconds" and by_class "Class.on_train_batch_end" for the clocked batch hooks."""
        batch = self._batch_clocks.take()
        out = self._epoch_end_times(end)
        if batch:
            out = out or {"seconds": 0.0, "by_class": {}}
            out["by_class"].update(batch)
            out["batch_seconds"] = round(sum(batch.values()), 6)
        return out

    def _epoch_end_times(self, end: float) -> dict[str, Any] | None:
        marks = self._marks
        if not marks or not self._clocked:
            return None
        by_class: dict[str, float] = {}
        for n, (slot, t) in enumerate(marks):
            until = marks[n + 1][1] if n + 1 < len(marks) else end
            name = self._clocked[slot] if 0 <= slot < len(self._clocked) else "?"
            by_class[name] = by_class.get(name, 0.0) + max(0.0, until - t)
        return {
            "seconds": round(max(0.0, end - marks[0][1]), 6),
            "by_class": {k: round(v, 6) for k, v in by_class.items()},
        }


def _numbers(logs: Any) -> dict[str, float]:
    metrics = {}
    for key, value in (logs or {}).items():
        try:
            metrics[key] = float(value)
        except (TypeError, ValueError):
            continue
    return metrics


def _step_spread(starts: list[float], train_end: float, per_call: int) -> dict[str, float] | None:
    """Each call's time until the next (the last one's until training ended), per step."""
    durations = [(b - a) / per_call for a, b in itertools.pairwise(starts)]
    return spread([*durations, max(0.0, train_end - starts[-1]) / per_call], extremes=True)
