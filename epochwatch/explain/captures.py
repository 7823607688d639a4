"""Which ops inside the compiled step: short captures with the framework's profiler.

Stack sampling says "inside the compiled step" and stops there: Python frames cannot see
ops. The framework's profiler can (TF's, or torch.profiler for a torch run, eager torch's
op-running frames being its step: frames.py), at a price (TF's on CPU slows the steps it
records by a tenth to a quarter, torch's by a fifth or so), so a capture is short: a few
whole steps where the loop says its steps, else `steps` steps' time from an epoch record
(class docstring), and at most two a run (each taken once more, twice as long, when it
held no whole step), each paid for before the next begins (below):

- a baseline, once, early: after the baseline stack window found at least `COMPILED_SHARE`
  of the epoch inside a compiled step (a run without one never pays for it);
- a slow one, when a slow stack window found the added time inside the compiled step.

Each capture is read back as own seconds per op per step (the profiler's `op_seconds`, in
integrations/tf_profile.py or torch_profile.py), so captures of different lengths
compare; the ops whose time grew most are named, with their share of the time added, or
without a baseline the ops that take most. Captures stay in `<run_id>.profile/`
(`baseline/` for the first), for TensorBoard's profile plugin (TF) or Perfetto (torch's
`*.pt.trace.json`): the profiler's `how_to_open`, where it has one, says how.

Paying for a capture: its cost is `SLOWDOWN` of the time it recorded (what the profiler
adds to the steps it records) and the CPU its stop and read-back took, measured. A capture
of a few steps is a large share of the epoch it falls in (most of a short epoch, and of a
run with a step or two an epoch nothing shorter holds a step), so, as a memory window's
slices are, it is paid for before the next capture begins: until its cost is `budget` of
the time since it began. A capture and its cool-down are one window, which costs at most
2% of the time it spans (bench/explain.py --tf-captures measures it).
"""

from __future__ import annotations

import math
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epochwatch.explain.anchor import STEPS, StepAnchor
from epochwatch.explain.frames import COMPILED
from epochwatch.explain.looking import LOOKING
from epochwatch.explain.stacks import Profile
from epochwatch.samplers.own_rss import own_rss_bytes, trim_heap

COMPILED_SHARE = 0.25  # of the baseline window's samples: the run has a compiled step
NAMED = 5  # ops named
WAIT_FOR_TRACEMALLOC = 2  # epoch records a stopped capture's read waits for tracemalloc to stop
# What a capture adds to the steps it records, of their time: TF's profiler on CPU 9-24%
# (a small MLP's steps in bench/explain.py, a Keras while loop's), torch's 17-30% (a 4.7 ms
# step 5.5 ms); above both.
SLOWDOWN = 0.35
TRIM_RESIDUE = 32 << 20  # bytes a capture left, from its start to its read, that are given back
BUDGET = 0.015  # a capture's cost, of the time it and its cool-down span: 2% less what SLOWDOWN misses
# A capture's cost before it is measured, of the time it will record: SLOWDOWN and TF's stop
# (0.18 s of CPU for 0.68 s of a while loop's steps: 70,000 events to convert).
EXPECTED = 0.6


@dataclass
class _Capture:
    path: str
    epoch: int  # the epoch record that began it (or armed it, for a step to begin it)
    purpose: str  # "baseline" or "slow"
    length: float  # its time limit, seconds
    steps: int | None = None  # the whole steps it records, where the loop says its steps
    timer: threading.Timer | None = None
    started: float | None = None  # the clock when it began; None: armed, waiting for its step
    recorded: float | None = None  # seconds it recorded (clock), once stopped
    work: float = 0.0  # CPU seconds its stop and read took
    waited: int = 0  # epoch records its read waited (tracemalloc was tracing)
    rss_before: int | None = None  # the process's RSS as it began

    def cost(self) -> float:
        """What it cost the run: the recorded steps' slowdown, its stop and its read."""
        return SLOWDOWN * (self.recorded or 0.0) + self.work


class Captures:
    """The profiler's captures of one run. `profiler()` gives the framework's profiler
    (start(dir) -> bool, stop(), op_seconds(dir)) or None; `profile_dir()` where captures go.

    Where the loop says its steps (a Keras fit, a `hook.epoch()` loop's counted steps:
    anchor.py), a capture records exactly `steps` whole steps: it begins as the epoch's
    second step begins (the first also starts the epoch's input) and ends as the step
    `steps` later begins, both on the training thread. Elsewhere it begins at the epoch
    record and lasts `steps` steps' time by the epoch before (`min_seconds` at least, a
    tenth of the epoch at least, `limit` at most). Either way a timer ends it
    at its time limit (torch's profiler only notes the timer's stop: its training thread
    stops at its next step, integrations/torch_profile.py), and the next epoch record
    ends it if nothing has."""

    def __init__(
        self,
        profiler: Callable[[], Any],
        profile_dir: Callable[[], str] | None,
        steps: float = 3.0,
        min_seconds: float = 0.2,
        limit: float = 10.0,
        budget: float = BUDGET,
        clock: Callable[[], float] = time.perf_counter,
        anchor: StepAnchor = STEPS,
    ) -> None:
        self._profiler_of = profiler
        self.profiler: Any = None
        self.profile_dir = profile_dir
        self.steps, self.min_seconds, self.limit = steps, min_seconds, limit
        self.budget, self._clock, self._anchor = budget, clock, anchor
        self._lock = threading.Lock()  # a capture's stop: the timer's thread or the training thread
        self._by_steps = True  # until a capture armed at a step saw no such step
        self._paid_at = 0.0  # the clock when the last capture's cost is paid: none starts before
        self.cost_seconds = 0.0  # the captures' cost so far (Capture.cost)
        self._slowed = 0.0  # the recorded steps' slowdown reckoned, not yet taken by slowed_steps()
        self._armed: list[str] = []  # purposes waiting to begin, first first
        self._open: _Capture | None = None
        self._stopped: _Capture | None = None  # stopped, not read yet (tracemalloc was tracing)
        self._done: set[str] = set()
        self._again: set[str] = set()  # captures taken again, twice as long: the first held no whole step
        self._base: str | None = None  # the baseline capture's directory
        self._base_seconds: dict[str, float] | None = None  # and what it read back

    def after_baseline(self, base: Profile) -> None:
        """The baseline stack window closed: capture a baseline if the run's time is in a
        compiled step."""
        compiled = sum(n for place, n in base.places.items() if place.category == COMPILED)
        if base.samples and compiled >= COMPILED_SHARE * base.samples:
            self._arm("baseline")

    def after_slow(self, where: list[dict[str, Any]]) -> None:
        """A slow stack window closed: capture a slow epoch if the added time is inside the step."""
        if where and where[0]["category"] == COMPILED:
            self._arm("slow")

    def _arm(self, purpose: str) -> None:
        if purpose in self._done or purpose in self._armed or self.profile_dir is None:
            return
        self.profiler = self.profiler or self._profiler_of()
        if self.profiler is not None:
            self._armed.append(purpose)

    def on_epoch(
        self, epoch: int, seconds: float, steps: int | None, epochs_left: int | None = None
    ) -> dict[str, Any] | None:
        """An epoch record: the open capture ends (if nothing has ended it), an armed one
        begins. `epochs_left`: the epochs a fit plans still to run, where it says. Returns
        the explain record's fields of a slow capture that ended."""
        out = self._read(epoch) or self._close(epoch)
        if self._armed and not self.busy and self.profile_dir is not None:
            self._begin(self._armed.pop(0), epoch, seconds, steps, epochs_left)
        return out

    @property
    def capturing(self) -> bool:
        """A capture records, or waits to be read: the epoch it falls in is the hook's doing
        (the profiler slows its steps, and holds native memory until it is read: trim_heap)."""
        return self._open is not None or self._stopped is not None

    @property
    def busy(self) -> bool:
        """A capture is open, waits to be read, or is not paid for yet."""
        return self.capturing or self._clock() < self._paid_at

    def _begin(
        self, purpose: str, epoch: int, seconds: float, steps: int | None, epochs_left: int | None
    ) -> None:
        assert self.profile_dir is not None
        self._done.add(purpose)
        path = self.profile_dir() + ("/baseline" if purpose == "baseline" else "")
        longer = 2.0 if purpose in self._again else 1.0
        step = seconds / steps if steps else seconds
        length = min(self.limit, longer * max(self.min_seconds, 0.1 * seconds, self.steps * step))
        by_steps = bool(self._by_steps and self._anchor.active and steps and steps >= 2)
        if purpose == "baseline" and epochs_left is not None:
            # A fit too short to pay for a baseline and still take a slow capture keeps
            # its budget for the slow one (which then names the ops that take most time).
            # What is left and what the capture records are both at this epoch's pace: a
            # slowing fit's earlier pace said too little was left (the same 15-epoch fit
            # took its baseline or not as the baseline window closed at its 2nd or 3rd).
            recorded = min(self.steps, (steps or 2) - 1) * step if by_steps else length
            if epochs_left * seconds < EXPECTED * recorded / self.budget + 2 * seconds:
                return
        capture = self._open = _Capture(path, epoch, purpose, length)
        if by_steps:
            capture.steps, capture.length = math.ceil(longer * self.steps), self.limit
            self._anchor.arm(1, lambda: self._start(capture), owner=self, this_loop=False)
        else:
            self._start(capture)

    def _start(self, capture: _Capture) -> None:
        """On the training thread: at an epoch record, or as the capture's first step begins."""
        if self._open is not capture:
            return
        started = self._clock()
        capture.rss_before = own_rss_bytes()
        if not self.profiler.start(capture.path):
            self._open = None
            return
        capture.started = started
        LOOKING.begin(self)  # until it is read back: the profiler's memory stays till then
        timer = threading.Timer(capture.length, self._stop, args=(capture,))
        timer.daemon = True
        timer.name = "epochwatch-explain-profile"
        capture.timer = timer
        timer.start()
        if capture.steps is not None:
            self._anchor.arm(1 + capture.steps, lambda: self._stop(capture), owner=self)

    def _stop(self, capture: _Capture) -> None:
        """Its steps are done (the training thread), its time is up (the timer's), or the
        epoch ended (the record's): the profiler stops; what that cost is the capture's."""
        with self._lock:
            if self._open is not capture:
                return  # a timer that outlived its capture: the profiler may hold another
            if capture.timer is not None:
                capture.timer.cancel()
            if capture.started is not None and capture.recorded is None:
                capture.recorded = self._clock() - capture.started
        c0 = time.thread_time()
        self.profiler.stop()  # a second stop does nothing (torch's: stops one only noted)
        spent = time.thread_time() - c0
        with self._lock:
            capture.work += spent

    def _close(self, epoch: int) -> dict[str, Any] | None:
        capture = self._open
        if capture is None:
            return None
        self._anchor.disarm(self)
        if capture.started is None:
            # Armed at a step this epoch did not reach: from now on a capture begins at
            # the epoch record, this one too (on_epoch begins it next).
            self._open = None
            self._by_steps = False
            self._done.discard(capture.purpose)
            self._armed.insert(0, capture.purpose)
            return None
        self._stop(capture)
        self._open, self._stopped = None, capture
        return self._read(epoch)

    def _read(self, epoch: int) -> dict[str, Any] | None:
        """Read the stopped capture back, unless a memory window's tracemalloc slice is
        tracing (it spans epoch records): reading allocates much (torch's 0.05 s read took
        1.0 s of CPU under a slice's 16-frame tracing), so it waits a record or two."""
        capture = self._stopped
        if capture is None:
            return None
        if tracemalloc.is_tracing() and capture.waited < WAIT_FOR_TRACEMALLOC:
            capture.waited += 1
            return None
        self._stopped = None
        c0 = time.thread_time()
        found = self.profiler.op_seconds(capture.path)
        seconds = found[0] if found else None
        _give_back(capture)
        LOOKING.end(self)
        capture.work += time.thread_time() - c0
        self._pay(capture)
        if seconds is None and capture.purpose not in self._again:
            # No step completed inside it (a loaded host made the steps slower than the
            # epoch before said): once more, twice as long, rather than an empty answer.
            self._again.add(capture.purpose)
            self._armed.insert(0, capture.purpose)
            return None
        if capture.purpose == "baseline":
            self._base, self._base_seconds = capture.path, seconds
            return None
        ops = grown_ops(self._base_seconds, seconds)
        how = getattr(self.profiler, "how_to_open", None)  # where the profiler says how to open it
        return {
            "method": "profiler",
            "epoch": epoch,
            "epochs": [capture.epoch + 1],
            "profile_dir": str(Path(capture.path)),
            "cost_seconds": round(capture.cost(), 6),
            "baseline_profile_dir": self._base,
            "ops": ops,
            "where": [],
            "summary": describe_ops(
                ops, self._base is not None, capture.path, str(how(capture.path)) if callable(how) else None
            ),
        }

    def _pay(self, capture: _Capture) -> None:
        """No capture begins before this one's cost is `budget` of the time since it began."""
        cost = capture.cost()
        self.cost_seconds += cost
        self._slowed += SLOWDOWN * (capture.recorded or 0.0)
        self._paid_at = (capture.started or self._clock()) + cost / self.budget

    def slowed_steps(self) -> float:
        """The slowdown the profiler added to the steps it recorded (reckoned) since last
        asked: the hook's overhead, which no clock of its own sees (its stop and read run
        on threads and in callbacks the overhead clocks already count)."""
        slowed, self._slowed = self._slowed, 0.0
        return slowed

    def finish(self, epoch: int) -> dict[str, Any] | None:
        """The run ends: a capture under way or not read yet is read now, tracemalloc or not
        (a run that ends soon after its slow steps were captured still gets their ops), and
        none is taken again. Returns the explain record's fields of a slow capture."""
        self._armed, self._again = [], {"baseline", "slow"}
        capture = self._open
        if capture is not None and (capture.started is None or capture.epoch == epoch):
            self.close()  # begun (or armed) at the last epoch's record: it holds no step
            return None
        for waiting in (self._open, self._stopped):
            if waiting is not None:
                waiting.waited = WAIT_FOR_TRACEMALLOC
        out = self._read(epoch) or self._close(epoch)
        self.close()
        return out

    def close(self) -> None:
        self._stopped = None
        LOOKING.end(self)
        capture, self._open = self._open, None
        self._anchor.disarm(self)
        if capture is not None and capture.started is not None:
            if capture.timer is not None:
                capture.timer.cancel()
            self.profiler.stop()


def _give_back(capture: _Capture) -> None:
    """Give the heap's free pages back once a capture is read, where it left much: what it
    held is freed but glibc keeps the pages (keras#9350's LSTM: +165 MiB after the read). Not
    for a small residue: a trim gives back the training's own free pages too, which its next
    epochs fault in again, and that rise after a dip read as a growth of a healthy loop of
    fits ("2.7 MiB per fit ..., then stopped growing")."""
    now = own_rss_bytes()
    if capture.rss_before is not None and now is not None and now - capture.rss_before >= TRIM_RESIDUE:
        trim_heap()


def grown_ops(base: dict[str, float] | None, slow: dict[str, float] | None) -> list[dict[str, Any]]:
    """The ops whose own time per step grew most from the baseline capture to the slow one,
    each with its share of all the time the ops that grew added; without a baseline, the
    ops that take most of the slow capture's time, with their share of it."""
    if not slow:
        return []
    rows = [(s - (base or {}).get(op, 0.0), s, op) for op, s in slow.items()]
    rows = [r for r in rows if r[0] > 0]
    total = sum(r[0] for r in rows)
    rows.sort(reverse=True)
    return [
        {
            "op": op,
            "share": round(added / total, 3),
            "seconds_per_step": round(after, 6),
            **({"added_seconds_per_step": round(added, 6)} if base else {}),
        }
        for added, after, op in rows[:NAMED]
        if total > 0
    ]


def describe_ops(ops: list[dict[str, Any]], baseline: bool, path: str, how: str | None = None) -> str:
    """The summary of a slow capture; `how` says how to open it (the profiler's
    `how_to_open`), TensorBoard's profile plugin by default (TF's captures)."""
    where = (
        f"a profile of the slow compiled step is in {path} ({how or f'tensorboard --logdir {path}: Profile'})"
    )
    if not ops:
        return where
    named = "; ".join(f"{round(100 * o['share'])}% {_tail(o['op'])}" for o in ops[:3])
    return (
        f"{where}; the ops whose time grew most: {named}"
        if baseline
        else f"{where}; the ops taking most time: {named}"
    )


def _tail(op: str, parts: int = 3) -> str:
    """An op's name, its last parts (a while loop's body ops repeat its scopes many times)."""
    name, _, kind = op.rpartition(" ")
    tail = "/".join(name.split("/")[-parts:])
    return f"{'…/' if tail != name else ''}{tail} {kind}"
