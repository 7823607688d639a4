"""Epochs for loops that never say where theirs are: cut from the steps the hook sees.

A custom loop with only `import epochwatch.hook` (a GradientTape loop, a PyTorch loop)
calls no `hook.epoch()`, so without this it gets no epoch record and no detector ever
looks at it. The integrations report what they see without help: each optimizer update
(`step(owner)`, integrations/optimizer_steps.py) and each new pass over a dataset
(`pass_started(key)`, integrations/data_passes.py). A loop that updates its variables by
hand (`w.assign_sub(lr * dw)`, TF's basic training loop) has no optimizer: its gradients
are its steps (`step(TAPE)`, `GradientTape.gradient`) until an optimizer is seen, whose
updates are the steps from then on (the gradient just counted was that update's step).
From those, epochs are cut:

- `data_pass`: the dataset that fed the steps is iterated again (a `for` loop's next pass),
  or one built anew from the same source the same way (`ds.enumerate()` each epoch:
  pass_keys.py), unless that is a new iterator made for each step (`next(iter(ds))` in
  the loop: iterators_per_step.py);
- `new_model`: an optimizer never seen before takes its first step (a loop that builds a
  model per iteration); each such optimizer also gets `fit_start`/`fit_end` records, as a
  Keras fit does, so `models_in_loop` judges the loop like a loop of fits;
- `step_remade`: no pass seen, and a step function made anew trains what the last one did
  (`training_of`: a `jax.jit` of the same code made at each epoch's start): no new fit;
- `window_steps` / `window_time`: no pass seen yet, and the epoch reached
  `WINDOW_STEPS` steps or `WINDOW_SECONDS` seconds;
- `fit`: a Keras fit began (its epochs are its own; automatic ones resume after it).

The record says which (`epoch_source`). The script's own `hook.epoch()` wins: once it is
called, automatic epochs switch off for good; its own `hook.step()` wins over the updates
(its steps are counted, not both). Steps inside a Keras fit are the fit's (its callback
counts them), so they are ignored here. Inside the script's own epochs, when it calls no
`hook.step()`, the updates are that epoch's steps (`_loop_step`): its record gets `steps`,
intervals and the step anchor that sizes explain's memory slices (explain/anchor.py).

Per step (the training thread), while the same optimizer steps inside the open automatic
epoch and no cut or interval is due: an identity compare, a clock read, two compares and
an append. Anything else (the first step, another optimizer, a cut, an interval, a fit's
step) takes `_slow_step`, which re-arms that path (`_arm`); the Recorder disarms it
whenever an epoch begins or ends (`epoch_changed`).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from time import perf_counter
from typing import Any

from epochwatch import envvars
from epochwatch.explain.anchor import STEPS
from epochwatch.recorder.inference_calls import InferenceCalls
from epochwatch.recorder.iterators_per_step import IteratorsPerStep
from epochwatch.recorder.pass_keys import same_dataset
from epochwatch.recorder.second_optimizers import CO_STEPS, SecondOptimizers
from epochwatch.samplers.own_rss import own_rss_bytes
from epochwatch.serials import serial_of

SOURCE = "auto"  # the Recorder epochs' `source` for these epochs
LOOP = "loop"  # the script's own epochs (hook.epoch())
WINDOW_STEPS = 1000
WINDOW_SECONDS = 60.0
_NOBODY = object()  # the fast path's owner while it is disarmed: no optimizer is this
_SCRIPT = object()  # the owner of the script's own hook.step() calls
TAPE = object()  # the owner of the gradients taken by a loop that has no optimizer


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
        self.broken = False  # counting failed: no steps at all
        self.at_begin = 0  # 1: steps are counted as they begin (a step function's calls),
        # 0: as they end (an eager update, after the step's forward pass and gradients)
        self.scripted = False  # the script calls hook.step(): its steps win
        self.fit_records = True  # False where the integration writes each optimizer's fit_start
        # What integrations add to the fit_start written here, by integration (TensorFlow's:
        # whether its functions run eagerly; Keras': the clear_session() calls counted so
        # far): a few reads, once per new optimizer, never raising.
        self.fit_facts: dict[str, Callable[[], dict[str, Any]]] = {}
        # ... and what they add to every fit_start, a Keras fit's too (tf.data's: the
        # from_generator datasets made so far).
        self.every_fit_facts: dict[str, Callable[[], dict[str, Any]]] = {}
        # What a step function trains, where the script makes its step anew (a `jax.jit`
        # made each epoch, integrations/jit_steps.py): a new owner whose key is the current
        # one's is the same training, no new model (None: not known, judged as before).
        self.training_of: Callable[[Any], Any] | None = None
        self.owner: Any = None  # the optimizer of the last step seen
        self.optimized = False  # an optimizer was seen: gradients (TAPE) are no steps
        self._owners: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
        # What a new optimizer updates (ids of its variables: `updating`, set by the update's
        # wrapper for an optimizer not seen yet), and each owner's: a new optimizer on the same
        # variables is the same model's training (tensorflow#27120: a new Adam each epoch).
        self.updating: frozenset[int] | None = None
        self._updates: dict[int, frozenset[int]] = {}  # serial -> variable ids
        # ... and weak references to a few of them: ids are reused once objects are freed (a
        # loop that deletes its model before building the next), so the same ids name the same
        # variables only while those are alive.
        self.updated: tuple[weakref.ref[Any], ...] = ()
        self._variables: dict[int, tuple[weakref.ref[Any], ...]] = {}
        self._replaced = 0  # ... such new optimizers since the last epoch record (its field)
        # Second optimizers of a training (a GAN's): their updates are the same batches' steps.
        self._co = SecondOptimizers()
        self._serials = 0
        self._fit: int | None = None  # the fit index of the current owner's fit_start
        self._adopted: int | None = None  # a fit_start the integration wrote (fit_records False)
        self._fit_start = 0.0
        self._fit_first = 0  # total_steps when the current optimizer's fit began
        self._counted = 0  # steps of the epochs closed so far
        self._deadline = 0.0
        self._number = 0
        self._feeding: Any = None  # the key of the dataset that fed the steps
        self._candidate: Any = None  # the last dataset pass started before steps were seen
        self._steps_at_pass = 0  # total_steps when the candidate's (then the feeding's) pass began
        self.remade = IteratorsPerStep()  # `next(iter(ds))` for each step: no epochs
        recorder.add_epoch_fields("new iterators", lambda: self.remade.fields(timed=self.at_begin == 1))
        # The newest pass in the script's own epoch: (its key, the epoch's start, its steps then).
        self._loop_pass: tuple[Any, float, int] | None = None
        self._passes = False  # a data pass has been seen: passes cut, windows do not
        # The fast path (`step`): armed for one owner with the open epoch's step list, the
        # time of the next cut or interval and the step count of the next cut.
        self._fast: Any = _NOBODY
        self._stamps: list[float] = []
        self._limit = 0.0
        self._cap: float = 0.0
        environ = recorder.environ
        self.window_steps = int(_setting(environ, envvars.EPOCHWATCH_WINDOW_STEPS, WINDOW_STEPS))
        self.window_seconds = _setting(environ, envvars.EPOCHWATCH_WINDOW_SECONDS, WINDOW_SECONDS)
        self.inference = InferenceCalls(recorder, self.window_seconds)  # loops that never train
        self.tf_marks: Any = None  # the tf.functions watched (integrations/optimizer_steps.tf_functions)

    def switch_off(self) -> None:
        """The script marks its own epochs: close ours and cut no more."""
        if self.off:
            return
        self.inference.training_began()  # its validation between its epochs is no inference run
        self.stop()
        self._close(self._ending())
        self._end_fit()

    def stop(self) -> None:
        """Cut no more epochs (the script's epochs win)."""
        self.off, self._fast = True, _NOBODY

    def script_owns(self, epoch: Any) -> None:
        """The script's `hook.step()` in its own epoch: its steps are the steps; what the
        updates counted in this epoch before it goes."""
        self.scripted, self._fast = True, _NOBODY
        STEPS.active = False
        epoch.steps.clear()

    def epoch_changed(self) -> None:
        """An epoch began or ended (the Recorder's): the fast path is re-armed by the next step."""
        self._fast = _NOBODY

    def fit_began(self) -> None:
        """A Keras fit opens its first epoch while an automatic one is open: ours ends here,
        written (the steps so far were trained), and the next update after the fit opens a
        new one."""
        self._close("fit")

    def adopt_fit(self, index: int) -> None:
        """The integration writes the next optimizer's `fit_start` as `index` (PyTorch's,
        before its first step): the last fit ends first, and this one ends like ours."""
        self._end_fit()
        self._adopted = index

    @property
    def steps(self) -> int:
        """Steps in the open automatic epoch."""
        epoch = self._rec._epoch
        return len(epoch.steps) if epoch is not None and epoch.source == SOURCE else 0

    def step(self, owner: Any) -> None:
        """One optimizer update by `owner` (on the training thread: keep it cheap)."""
        if owner is self._fast:
            now = perf_counter()
            stamps = self._stamps
            if now < self._limit and len(stamps) < self._cap:
                stamps.append(now)
                return
        self._slow_step(owner)

    def script_step(self) -> bool:
        """The script's `hook.step()` outside an epoch of its own: its steps are the steps
        (optimizer updates still tell models apart); False when automatic epochs are off."""
        if self.off:
            return False
        if not self.scripted:
            self.scripted, self._fast = True, _NOBODY
        self.step(_SCRIPT)
        return True

    def _slow_step(self, owner: Any) -> None:
        """A step that opens or cuts an epoch, comes from another optimizer, is due an
        interval, or is not ours to count (off, a fit's, the script counts its own)."""
        if self.off:
            self._loop_step(owner)
            return
        if owner is TAPE and (self.optimized or self.scripted):
            return  # a gradient where an optimizer's updates or the script's steps count
        source = self._rec.epoch_source
        if source is not None and source != SOURCE:
            return  # a Keras fit's step (its callback counts it), or the script's own epoch
        if self.scripted:
            if owner is not _SCRIPT:  # an update: it only tells models apart
                if owner is not self.owner:
                    self._new_owner(owner)
                return
            owner = self.owner
        self._count(owner)

    def _count(self, owner: Any) -> None:
        if not self.inference.blind:  # calls before the first step were not a run of their own
            self.inference.training_began()
        if owner is not self.owner:
            self._new_owner(owner)
        if self._co.held(owner):
            return  # a new optimizer's first update, a few steps into the fit: told at its next
        if self._co and owner in self._co:
            if self._co.updated(owner, self.steps):  # it updates most often: its are the steps
                self._fast = _NOBODY
            return  # a second optimizer's update: the same step as the first one's
        rec = self._rec
        now = perf_counter()
        self.remade.stepped(now, timed=self.at_begin == 1)
        if rec.epoch_source is None:
            self._open(now)
        elif not self._passes and (self.steps >= self.window_steps or now >= self._deadline):
            self._cut("window_steps" if self.steps >= self.window_steps else "window_time", now)
        epoch = rec._epoch
        if epoch is None:  # the run is not recorded
            return
        if self._co.late_step is not None:  # a new model's first update, held: its step
            epoch.steps.append(self._co.late_step)
            self._co.late_step = None
        epoch.steps.append(now)
        if now >= rec.clock.due:
            rec.interval(epoch.steps, now)
        self._arm(owner, epoch)

    def _loop_step(self, owner: Any) -> None:
        """An update in the script's own epoch (`hook.epoch()`) that marks no steps: one
        step of it, by the epoch's first optimizer (a GAN's second one is the same step),
        then the fast path, which leaves it at the step the anchor waits for."""
        rec = self._rec
        epoch = rec._epoch
        if self.broken or self.scripted or epoch is None or epoch.source != LOOP:
            return
        if owner is TAPE and self.optimized:
            return  # the update that follows is the step
        if owner is not TAPE and not self.optimized:
            self.optimized = True
            if self.owner is TAPE and epoch.steps:  # the gradient just counted was its step
                epoch.steps.pop()
        elif epoch.steps and owner is not self.owner:
            return
        self.owner = owner
        now = perf_counter()
        self.remade.stepped(now, timed=self.at_begin == 1)
        steps = epoch.steps
        steps.append(now)
        STEPS.active = True  # steps known: a memory slice starts at one (explain/slices.py)
        begin = self.at_begin
        if len(steps) - begin >= STEPS.at:  # step `at` begins, as Keras' batch `at` does
            STEPS.fire()
        if now >= rec.clock.due:
            rec.interval(steps, now)
        self._stamps, self._limit, self._cap, self._fast = steps, rec.clock.due, STEPS.at - 1 + begin, owner

    def _arm(self, owner: Any, epoch: Any) -> None:
        """The next steps of `owner` take the fast path until a cut or an interval is due."""
        if self.off:
            return
        self._stamps = epoch.steps
        due = self._rec.clock.due
        self._limit = due if self._passes else min(due, self._deadline)
        self._cap = math.inf if self._passes else self.window_steps
        self._fast = _SCRIPT if self.scripted else owner

    def pass_started(self, dataset: Any, key_of: Callable[[Any], Any] | None = None) -> None:
        """A new pass over `dataset` (`iter(dataset)`) began; `key_of` names what it is a
        pass over (pass_keys.py; default: the object), read only when passes count here."""
        if self.off:
            self._pass_in_loop(dataset, key_of)
            return
        epoch_source = self._rec.epoch_source
        if epoch_source is not None and epoch_source != SOURCE:
            return  # a Keras fit's own passes, or inside the script's own epoch
        key = dataset if key_of is None else key_of(dataset)
        if self._feeding is None:
            if self._candidate is None or self.total_steps == self._steps_at_pass:
                self._candidate, self._steps_at_pass = key, self.total_steps
                return
            self._feeding = self._candidate  # the steps since its pass began came from it
        if self.steps and same_dataset(key, self._feeding):
            since, self._steps_at_pass = self.total_steps - self._steps_at_pass, self.total_steps
            now = time.perf_counter()
            if self.remade.pass_began(since, now, dataset):
                self._fast = _NOBODY  # its step takes the slow path, which times it
                return
            self._passes = True
            self._cut("data_pass", now)

    def _pass_in_loop(self, dataset: Any, key_of: Callable[[Any], Any] | None) -> None:
        """A pass in the script's own epoch (`hook.epoch()`): it cuts nothing, but one a step
        or two after the last over the same dataset is a new iterator made for a step."""
        epoch = self._rec._epoch
        if epoch is None or epoch.source != LOOP:
            return
        key = dataset if key_of is None else key_of(dataset)
        last, self._loop_pass = self._loop_pass, (key, epoch.start_perf, len(epoch.steps))
        if last is not None and last[1] == epoch.start_perf and same_dataset(key, last[0]):
            self.remade.pass_began(len(epoch.steps) - last[2], time.perf_counter(), dataset)

    def close(self) -> None:
        """The run ends: the open epoch and fit are closed with what they have."""
        self.inference.finish()
        if not self.off:
            self._close(self._ending())
            self._end_fit()

    # -- internals ----------------------------------------------------------------------

    @property
    def total_steps(self) -> int:
        return self._counted + self.steps

    def _ending(self) -> str:
        """What ends an epoch that is closed early: the kind of epochs the run has."""
        return "data_pass" if self._passes else "window_steps"

    def _open(self, now: float) -> None:
        self._co.epoch_began()
        self._rec.begin_epoch(self._number, SOURCE)
        self._number += 1
        self._deadline = now + self.window_seconds

    def _cut(self, why: str, now: float) -> None:
        self._close(why)
        self._open(now)

    def _close(self, why: str) -> None:
        if self._rec.epoch_source != SOURCE:
            return
        steps = self.steps
        if not steps:  # a pass begun and never trained on (a fit iterating it, say): no epoch
            self._rec.abandon_epoch(SOURCE)
            self._number -= 1
            return
        self._counted += steps
        fields: dict[str, Any] = {"epoch_source": why, "steps": steps}
        if self._replaced:
            fields["optimizers_replaced"], self._replaced = self._replaced, 0
        self._rec.end_epoch(fields)

    def _new_owner(self, owner: Any) -> None:
        """An optimizer not seen at the last step: a new one is a new model's training."""
        if owner is not TAPE and owner is not _SCRIPT and not self.optimized:
            self.optimized = True  # its updates are the steps now
            if self.owner is TAPE:  # the gradient counted last was this update's step
                self._drop_last_step()
        previous, self.owner = self.owner, owner
        if owner is TAPE:  # no optimizer, no model to tell apart: no fit records
            return
        try:
            if owner in self._owners:
                return
        except TypeError:  # not weak-referenceable: judged by identity alone
            return
        updating, self.updating = self.updating, None
        held = self._co.decide(owner, self.total_steps)
        if held is not None:  # its first update was held: whose training it is, told now
            main = held.main() or previous
            if held.second:
                self._co_optimizer(owner, main, held.serial, held.variables)
                return
            previous, updating = main, held.own  # a new model's: as any new optimizer
        current = self._serial_of(previous)
        if current is not None and self._same_training(previous, owner):
            # The step made anew over the same training (jax803's jax.jit per epoch read "19
            # fits of 19 models"); its retraces are retrace_storm's. Made anew where no data
            # pass is seen, it marks where the script's epoch begins.
            self._owners[owner] = current
            if self.steps and not self._passes:
                self._cut("step_remade", time.perf_counter())
            return
        before = self._updates.get(current) if current is not None else None
        if current is not None and updating is not None and before is not None:
            if before == updating and self._alive(current):
                # A new optimizer for the same variables: the same model's training, no new fit
                # (tensorflow#27120's new Adam each epoch read "19 fits of 19 models").
                self._owners[owner] = current
                self._replaced += 1
                return
            into = self.total_steps - self._fit_first
            if held is None and not updating & before and into <= CO_STEPS:
                # Other variables, a few steps into the fit: a second optimizer of the same
                # training (an eager GAN's generator and discriminator: its first update cut a
                # one-step first epoch and a second "fit"), right after the fit's first update,
                # or where the fit's optimizer updates again before it does (second_optimizers.py).
                if into <= 1:
                    self._co_optimizer(owner, previous, current, before | updating)
                else:  # held: the fit's optimizer's updates stay the steps until it is told
                    self._co.hold(owner, self.total_steps, previous, current, before | updating, updating)
                    self.owner = previous
                return
        serial = self._serials  # a count, not len(): optimizers let go leave the dict
        if updating is not None:
            self._updates = {s: v for s, v in self._updates.items() if s > serial - 4}  # the newest few
            self._updates[serial] = updating
            self._variables = {s: v for s, v in self._variables.items() if s > serial - 4}
            self._variables[serial], self.updated = self.updated, ()
        self._serials += 1
        self._owners[owner] = serial
        # With hook.step() the step this update ends was counted as it began: it is this model's.
        at = self.total_steps - (1 if self.scripted and self.total_steps else 0)
        if serial and self.steps:
            self._cut("new_model", time.perf_counter())
        self._end_fit(at)
        rec = self._rec
        if not self.fit_records:
            self._fit, self._adopted = self._adopted, None
            self._fit_start, self._fit_first = time.perf_counter(), at
            return
        if not rec.start():
            return
        self._fit = rec.next_fit_index()
        self._fit_start, self._fit_first = time.perf_counter(), at
        # A step function counted as the owner (a jitted step, integrations/jit_steps.py)
        # names itself; the optimizer inside it is not known.
        step = getattr(owner, "epochwatch_step_name", None)
        block: dict[str, Any] = {
            "fit": self._fit,
            "source": "optimizer",
            # the process-wide numbering (serials.py): never a restored model's number
            "model": {
                "serial": serial_of(owner),
                "name": step if isinstance(step, str) else type(owner).__name__,
            },
        }
        if not isinstance(step, str):
            block["optimizer"] = {"class": type(owner).__name__}
        for facts in (*self.fit_facts.values(), *self.every_fit_facts.values()):
            block.update(facts())
        rec.emit("fit_start", **block)

    def _co_optimizer(self, owner: Any, main: Any, serial: int, variables: frozenset[int]) -> None:
        """`owner` is a second optimizer of `main`'s training (fit `serial`, which now
        updates `variables`): its updates are the same batches' steps."""
        self._owners[owner] = serial
        self._updates[serial] = variables
        self._co.add(owner, main)
        self.owner = main  # the first optimizer's updates stay the steps

    def new_to(self, owner: Any) -> bool:
        """Whether `owner` is an optimizer this run has not seen update yet (its wrapper then
        says what it updates: `updating`)."""
        if owner is self.owner or owner is TAPE or owner is _SCRIPT:
            return False
        try:
            return owner not in self._owners
        except TypeError:
            return False

    def _same_training(self, previous: Any, owner: Any) -> bool:
        """Whether a new step function trains what the previous one did (`training_of`)."""
        if self.training_of is None:
            return False
        key = self.training_of(owner)
        return key is not None and key == self.training_of(previous)

    def _alive(self, serial: int) -> bool:
        """Whether the variables a fit's optimizer updated are still alive (see `updated`)."""
        refs = self._variables.get(serial, ())
        return bool(refs) and all(ref() is not None for ref in refs)

    def _serial_of(self, owner: Any) -> int | None:
        """The serial of the fit an optimizer's steps are counted for, if it has one."""
        if owner is None or owner is TAPE or owner is _SCRIPT:
            return None
        try:
            return self._owners.get(owner)
        except TypeError:
            return None

    def _drop_last_step(self) -> None:
        epoch = self._rec._epoch
        if epoch is not None and epoch.source == SOURCE and epoch.steps:
            epoch.steps.pop()

    def _end_fit(self, at: int | None = None) -> None:
        """The current optimizer's fit ends after `at` steps of the run (default: all so far)."""
        if self._fit is None:
            return
        fields: dict[str, Any] = {
            "fit": self._fit,
            "source": "optimizer",
            "steps": (self.total_steps if at is None else at) - self._fit_first,
            "seconds": round(time.perf_counter() - self._fit_start, 6),
            "ended": "completed",
        }
        rss = own_rss_bytes()
        if rss is not None:
            fields["rss_bytes"] = rss  # the memory floor after each model (models_in_loop)
        self._fit = None
        self._rec.emit("fit_end", **fields)
