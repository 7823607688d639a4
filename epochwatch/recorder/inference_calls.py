"""Inference loops traced as a run: repeated `predict`/`evaluate`/model calls outside training.

A script that only calls `model.predict` in a loop (serving, batch scoring, an
evaluation sweep) never trains, so no epoch was ever cut and a leak in it went unseen.
Here its calls are cut into windows of `WINDOW_CALLS` calls lasting `MIN_WINDOW_SECONDS` at
least (or the automatic epochs' seconds), each an epoch record (`source: auto`, `epoch_source: inference_calls`) with an
`inference` block (calls per API, seconds per call): the host memory and slowdown
detectors judge them as they judge epochs, the time of a window being the time of its
calls. A window's epoch record is written when the window closes (begun and ended at once, its
start and seconds from its first call), so calls before a fit never start the run.

Calls while training runs are the training's: inside a Keras fit (its validation, its
callbacks' predictions: `fit_began`/`fit_ended` around each fit), inside any epoch, and
any call at all once a custom loop trained (its optimizer's steps or the script's own
epochs: its validation between epochs cannot be told from serving, so `blind` stays set).
The open window's calls when training begins were the training's (the model called before
its first update): dropped. After a Keras fit ends, calls are judged again, as the phase
after it (train, then score or serve: tensorflow#33030): its windows are numbered from 0,
a series of their own after the fit's epochs (series.py cuts one where the numbers
restart), and its last window, unfinished when the next fit begins or the run ends, is
dropped (a loop of fit + evaluate rounds writes no window per round). With no training
seen at all, the closing line says what was seen instead (`closing_text`).

A custom loop's calls of Keras's own inference loops (`predict`, `evaluate`,
`predict_on_batch`: each builds its input handling and step loop per call) are not
windows, but they are counted into the epoch they are made in (`in_loop`: the loop's
automatic epochs or the script's own; `loop_inference` in its record): a loop that predicts
one sample per step spends most of its time in them (tensorflow#40261), which no other
record shows. Calling the model (`__call__`) is not counted there: a training loop calls it
every step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from epochwatch import envvars
from epochwatch.samplers.own_rss import own_rss_bytes

SOURCE = "auto"
WINDOW_CALLS = 50
# An epoch record costs the calling thread about 10 ms (its samplers): windows of 50 calls of
# a millisecond cost a fifth of the loop (a traced predict step). Unless the calls per window
# are set (EPOCHWATCH_WINDOW_CALLS), a window lasts this long at least.
MIN_WINDOW_SECONDS = 1.0


# A served call's inputs are described (its first batches' statistics) once a run, from the
# first call of INPUT_ROWS rows or more (the statistics of a few rows are noise: a single
# row's spread is 0), trying at most INPUT_TRIES calls (a loop of one-row calls pays for
# eight descriptions, then none).
INPUT_ROWS = 32
INPUT_TRIES = 8


# A memory rise the closing line says is not judged when the windows were too few for the
# growth rules (the first window is warm-up, and they need 5 more).
JUDGED_WINDOWS = 6
UNJUDGED_RISE = 64 * 2**20


# Keras's inference loops, counted into a custom loop's epochs (`in_loop`).
LOOP_APIS = ("predict", "evaluate", "predict_on_batch")
LOOP_SOURCES = ("auto", "loop")  # the epochs of a custom loop: automatic, or the script's own


@dataclass
class LoopCalls:
    """The Keras inference calls made in one epoch of a custom loop."""

    apis: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    rows: int = 0  # rows of the calls whose input's size could be read
    unsized: int = 0  # calls whose input's size could not be read (a dataset, a generator)

    def add(self, api: str, seconds: float, rows: int | None) -> None:
        self.apis[api] = self.apis.get(api, 0) + 1
        self.seconds += seconds
        if rows is None:
            self.unsized += 1
        else:
            self.rows += rows

    def block(self) -> dict[str, Any]:
        """The epoch record's `loop_inference`: `rows` only when every call's size was read."""
        out: dict[str, Any] = {
            "calls": sum(self.apis.values()),
            "apis": dict(self.apis),
            "seconds": round(self.seconds, 6),
        }
        if not self.unsized:
            out["rows"] = self.rows
        return out


class InferenceCalls:
    """One per Recorder; `called(api, seconds)` after each call, on the calling thread."""

    def __init__(self, recorder: Any, window_seconds: float) -> None:
        self._rec = recorder  # typed Any: naming the Recorder would make an import circle
        given = recorder.environ.get(envvars.EPOCHWATCH_WINDOW_CALLS, "")
        try:
            calls = int(given or WINDOW_CALLS)
        except ValueError:
            calls = WINDOW_CALLS
        self.window_calls = calls if calls > 0 else WINDOW_CALLS
        self.min_seconds = 0.0 if given else MIN_WINDOW_SECONDS
        self.window_seconds = window_seconds
        self.training_seen = False  # a fit or a custom loop's step was seen
        self.fitting = 0  # Keras fits running (their calls are theirs)
        self.blind = False  # a custom loop trained: no call is an inference call again
        self.total: dict[str, int] = {}
        self.windows = 0  # epoch records written for windows of calls (the closing line's count)
        # Statistics of the first inputs served with INPUT_ROWS rows or more, in a run that
        # has not trained: what a restored model is fed, judged against what it was trained
        # on (input_distribution_shift); written in the first window that closes after them.
        self.inputs: dict[str, Any] | None = None
        self._inputs_tries = 0
        self._inputs_written = False
        self.depth = 0  # inside a wrapped call (predict's own model calls are not counted)
        self._calls: dict[str, int] = {}
        self._seconds = 0.0
        self._loops = LoopCalls()  # the window's calls of Keras's own inference loops
        self._number = 0
        self._open = False
        self._deadline = 0.0
        self._start_wall = self._start_perf = 0.0
        self._rss_first: int | None = None

    def called(self, api: str, seconds: float, rows: int | None = None) -> None:
        rec = self._rec
        source = rec.epoch_source
        if self.blind or self.fitting or source is not None:
            self._drop()  # a fit's validation, a training loop's model calls
            self.training_seen = True
            self.blind = self.blind or source in ("auto", "loop")
            return
        now = time.perf_counter()
        if not self._open:  # the window's epoch is written when it closes: calls before a
            # fit or a loop's first step (a model built by calling it) never start the run
            self._open, self._deadline = True, now + self.window_seconds
            self._start_wall, self._start_perf = time.time() - seconds, now - seconds
            if self._rss_first is None:
                self._rss_first = own_rss_bytes()
        self._calls[api] = self._calls.get(api, 0) + 1
        self.total[api] = self.total.get(api, 0) + 1
        self._seconds += seconds
        if api in LOOP_APIS:
            self._loops.add(api, seconds, rows)
        full = sum(self._calls.values()) >= self.window_calls
        if (full and now - self._start_perf >= self.min_seconds) or now >= self._deadline:
            self.close()

    def in_loop(self, api: str, seconds: float, rows: int | None) -> None:
        """A `predict`/`evaluate`/`predict_on_batch` call once a custom loop trained: counted
        into the open epoch when it is the loop's (not a fit's, not between the script's
        own epochs)."""
        epoch = self._rec._epoch
        if self.fitting or epoch is None or epoch.source not in LOOP_SOURCES:
            return
        if epoch.inference is None:
            epoch.inference = LoopCalls()
        epoch.inference.add(api, seconds, rows)

    def wants_inputs(self) -> bool:
        """Whether a call's inputs should be described: none yet, no training, few tries."""
        return self.inputs is None and not self.training_seen and self._inputs_tries < INPUT_TRIES

    def described(self, stats: dict[str, Any] | None) -> None:
        """A call's inputs described (`inputs.describe_inputs`): kept if there are rows enough."""
        self._inputs_tries += 1
        rows = stats.get("rows") if isinstance(stats, dict) else None
        if isinstance(rows, int) and rows >= INPUT_ROWS and not stats.get("skipped"):  # type: ignore[union-attr]
            self.inputs = stats

    def training_began(self) -> None:
        """A custom loop trains (its first step, the script's own epochs): the open window's
        calls were the training's (the model called, or traced, before its first update),
        and no later call can be told from its validation."""
        self.training_seen = self.blind = True
        self._drop()

    def fit_began(self) -> None:
        """A Keras fit begins: the open window's calls were the training's (before a first
        fit) or an unfinished window between fits (a round's evaluate): dropped."""
        self.training_seen = True
        self.fitting += 1
        self._drop()

    def fit_ended(self) -> None:
        """A Keras fit ended: calls after it are a phase of their own, numbered from 0
        (a notebook's runs end with each fit: its calls after one stay unjudged)."""
        self.fitting = max(0, self.fitting - 1)
        self._number = 0
        if self._rec.per_fit_runs:
            self.blind = True

    def finish(self) -> None:
        """The run ends: the open window is written when nothing trained (a short inference
        script), dropped after training (the few calls after a last fit are no window)."""
        if self.training_seen:
            self._drop()
        else:
            self.close()

    def _drop(self) -> None:
        if self._open:
            for api, n in self._calls.items():
                self.total[api] -= n
        self._open, self._calls, self._seconds, self._loops = False, {}, 0.0, LoopCalls()

    def close(self) -> None:
        """End the open window: its epoch record is written now, timed from its first call."""
        if not self._open:
            return
        self._open = False
        calls = sum(self._calls.values())
        block: dict[str, Any] = {
            "calls": calls,
            "apis": dict(self._calls),
            "seconds_per_call": round(self._seconds / calls, 6),
        }
        if self._loops.apis:
            block["loops"] = self._loops.block()
        if self.inputs is not None and not self._inputs_written:
            block["input_stats"], self._inputs_written = self.inputs, True
        self._calls, self._seconds, self._loops = {}, 0.0, LoopCalls()
        rec = self._rec
        if rec.epoch_source is not None:
            return
        rec.begin_epoch(self._number, SOURCE)
        self._number += 1
        self.windows += 1
        seconds = time.perf_counter() - self._start_perf
        fields = {
            "epoch_source": "inference_calls",
            "inference": block,
            "start": round(self._start_wall, 6),
            "seconds": round(seconds, 6),
            "end": round(self._start_wall + seconds, 6),
        }
        rec.end_epoch(fields)

    def closing_text(self) -> str | None:
        """'no training seen: 1,250 predict calls, RSS +19 MiB' when only inference was seen."""
        if self.training_seen or self._rec.fits_started or not self.total:
            return None
        calls = ", ".join(f"{n:,} {api} calls" for api, n in self.total.items())
        text = f"no training seen: {calls}"
        now = own_rss_bytes()
        if now is not None and self._rss_first is not None:
            rise = now - self._rss_first
            text += f", RSS {rise / 2**20:+,.0f} MiB"
            if rise >= UNJUDGED_RISE and self.windows < JUDGED_WINDOWS:
                # Said beside "no findings", a rise of 180 MiB read as judged and harmless.
                text += f" (too few windows of calls to judge its growth: {self.windows} of {JUDGED_WINDOWS})"
        return text
