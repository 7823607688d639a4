"""Epochs for loops that never say where theirs are: cut from the steps the hook sees.

A custom loop with only `import epochwatch.hook` (a GradientTape loop, a PyTorch loop)
calls no `hook.epoch()`, so without this it gets no epoch record and no detector ever
looks at it. The integrations report what they see without help: each optimizer update
(`step(owner)`, integrations/optimizer_steps.py) and each new pass over a dataset
(`pass_started(key)`, integrations/data_passes.py). From those, epochs are cut:

- `data_pass`: the dataset that fed the steps is iterated again (a `for` loop's next pass);
- `new_model`: an optimizer never seen before takes its first step (a loop that builds a
  model per iteration); each such optimizer also gets `fit_start`/`fit_end` records, as a
  Keras fit does, so `models_in_loop` judges the loop like a loop of fits;
- `window_steps` / `window_time`: no pass seen yet, and the epoch reached
  `WINDOW_STEPS` steps or `WINDOW_SECONDS` seconds.

The record says which (`epoch_source`). The script's own `hook.epoch()` wins: once it is
called, automatic epochs switch off for good. Steps inside a Keras fit are the fit's (its
callback counts them), so they are ignored here.

Per step (the training thread): an identity compare, an add, a clock read and a compare,
plus `Recorder.step`'s append.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from epochwatch import envvars
from epochwatch.recorder.inference_calls import InferenceCalls
from epochwatch.samplers.own_rss import own_rss_bytes
from epochwatch.serials import serial_of

SOURCE = "auto"  # the Recorder epochs' `source` for these epochs
WINDOW_STEPS = 1000
WINDOW_SECONDS = 60.0
WINDOW_STEPS_VAR = envvars.EPOCHWATCH_WINDOW_STEPS
WINDOW_SECONDS_VAR = envvars.EPOCHWATCH_WINDOW_SECONDS


def _setting(environ: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(environ.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


class AutoEpochs:
    """Cuts a loop's steps into epochs; one per Recorder (one loop at a time)."""

    def __init__(self, recorder: Any) -> None:
        # The Recorder that holds this (typed Any: naming it would make an import circle).
        self._rec = recorder
        self.off = False  # the script calls hook.epoch(): its epochs win
        self.fit_records = True  # False where the integration writes each optimizer's fit_start
        self.owner: Any = None  # the optimizer of the last step seen
        self._owners: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        self._serials = 0
        self._fit: int | None = None  # the fit index of the current owner's fit_start
        self._fit_start = 0.0
        self._fit_first = 0  # total_steps when the current optimizer's fit began
        self.steps = 0  # in the open automatic epoch
        self._counted = 0  # steps of the epochs closed so far
        self._deadline = 0.0
        self._number = 0
        self._feeding: Any = None  # the key of the dataset that fed the steps
        self._candidate: Any = None  # the last dataset pass started before steps were seen
        self._steps_at_pass = 0  # total_steps when the candidate's pass began
        self._passes = False  # a data pass has been seen: passes cut, windows do not
        environ = recorder.environ
        self.window_steps = int(_setting(environ, WINDOW_STEPS_VAR, WINDOW_STEPS))
        self.window_seconds = _setting(environ, WINDOW_SECONDS_VAR, WINDOW_SECONDS)
        self.inference = InferenceCalls(recorder, self.window_seconds)  # loops that never train

    def switch_off(self) -> None:
        """The script marks its own epochs: close ours and cut no more."""
        if self.off:
            return
        self.off = True
        self._close("data_pass" if self._passes else "window_steps")
        self._end_fit()

    def step(self, owner: Any) -> None:
        """One optimizer update by `owner` (on the training thread: keep it cheap; the
        Recorder's own step, inlined: the append and the interval clock's compare)."""
        if self.off:
            return
        rec = self._rec
        epoch = rec._epoch
        if epoch is None or epoch.source != SOURCE or owner is not self.owner:
            if epoch is not None and epoch.source != SOURCE:
                return  # a Keras fit's step (its callback counts it), or the script's own epoch
            self._slow_step(owner)
            return
        now = time.perf_counter()
        if (self.steps >= self.window_steps or now >= self._deadline) and not self._passes:
            self._slow_step(owner)
            return
        self.steps += 1
        steps = epoch.steps
        steps.append(now)
        if now >= rec.clock.due:
            rec.interval(steps, now)

    def _slow_step(self, owner: Any) -> None:
        """A step that opens or cuts an epoch, or comes from another optimizer."""
        if not self.inference.training_seen:  # calls before the first step were not a run of their own
            self.inference.training_began()
        if owner is not self.owner:
            self._new_owner(owner)
        now = time.perf_counter()
        if self._rec.epoch_source is None:
            self._open(now)
        elif not self._passes and (self.steps >= self.window_steps or now >= self._deadline):
            self._cut("window_steps" if self.steps >= self.window_steps else "window_time", now)
        self.steps += 1
        self._rec.step()

    def pass_started(self, key: Any) -> None:
        """A new pass over a dataset (`iter(dataset)`) began; `key` names the dataset."""
        if self.off:
            return
        epoch_source = self._rec.epoch_source
        if epoch_source is not None and epoch_source != SOURCE:
            return  # a Keras fit's own passes, or inside the script's own epoch
        if self._feeding is None:
            if self._candidate is None or self.total_steps == self._steps_at_pass:
                self._candidate, self._steps_at_pass = key, self.total_steps
                return
            self._feeding = self._candidate  # the steps since its pass began came from it
        if key is self._feeding and self.steps:
            self._passes = True
            self._cut("data_pass", time.perf_counter())

    def close(self) -> None:
        """The run ends: the open epoch and fit are closed with what they have."""
        self.inference.close()
        if not self.off:
            self._close("data_pass" if self._passes else "window_steps")
            self._end_fit()

    # -- internals ----------------------------------------------------------------------

    @property
    def total_steps(self) -> int:
        return self._counted + self.steps

    def _open(self, now: float) -> None:
        rec = self._rec
        rec.begin_epoch(self._number, SOURCE)
        self._number += 1
        self._counted += self.steps
        self.steps = 0
        self._deadline = now + self.window_seconds

    def _cut(self, why: str, now: float) -> None:
        self._close(why)
        self._open(now)

    def _close(self, why: str) -> None:
        if self._rec.epoch_source == SOURCE:
            self._rec.end_epoch({"epoch_source": why, "steps": self.steps})

    def _new_owner(self, owner: Any) -> None:
        """An optimizer not seen at the last step: a new one is a new model's training."""
        self.owner = owner
        try:
            seen = owner in self._owners
        except TypeError:  # not weak-referenceable: judged by identity alone
            return
        if seen:
            return
        serial = self._serials  # a count, not len(): optimizers let go leave the dict
        self._serials += 1
        self._owners[owner] = serial
        if serial and self.steps:
            self._cut("new_model", time.perf_counter())
        self._end_fit()
        rec = self._rec
        if not self.fit_records or not rec.start():
            return
        self._fit = rec.next_fit_index()
        self._fit_start, self._fit_first = time.perf_counter(), self.total_steps
        block: dict[str, Any] = {
            "fit": self._fit,
            "source": "optimizer",
            # the process-wide numbering (serials.py): never a restored model's number
            "model": {"serial": serial_of(owner), "name": type(owner).__name__},
            "optimizer": {"class": type(owner).__name__},
        }
        rec.emit("fit_start", **block)

    def _end_fit(self) -> None:
        if self._fit is None:
            return
        fields: dict[str, Any] = {
            "fit": self._fit,
            "source": "optimizer",
            "steps": self.total_steps - self._fit_first,
            "seconds": round(time.perf_counter() - self._fit_start, 6),
            "ended": "completed",
        }
        rss = own_rss_bytes()
        if rss is not None:
            fields["rss_bytes"] = rss  # the memory floor after each model (models_in_loop)
        self._fit = None
        self._rec.emit("fit_end", **fields)
