"""Which ops inside the compiled step: short captures with the framework's profiler.

Stack sampling says "inside the compiled step" and stops there: Python frames cannot see
ops. The framework's profiler can (TF's, or torch.profiler for a torch run, eager torch's
op-running frames being its step: frames.py), at a price (TF's on CPU slows the steps it
records by a third or so, torch's by a fifth or so), so a capture is short: from an epoch record for `steps` steps' time (at
least `min_seconds`, a tenth of an epoch at least, at most `limit`), and at most two a run
(each taken once more, twice as long, when it held no whole step):

- a baseline, once, early: after the baseline stack window found at least `COMPILED_SHARE`
  of the epoch inside a compiled step (a run without one never pays for it);
- a slow one, when a slow stack window found the added time inside the compiled step.

Each capture is read back as own seconds per op per step (the profiler's `op_seconds`, in
integrations/tf_profile.py or torch_profile.py), so captures of different lengths
compare; the ops whose time grew most are named, with their share of the time added, or
without a baseline the ops that take most. Captures stay in `<run_id>.profile/`
(`baseline/` for the first), for TensorBoard's profile plugin (TF) or Perfetto (torch's
`*.pt.trace.json`): the profiler's `how_to_open`, where it has one, says how.
"""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epochwatch.explain.frames import COMPILED
from epochwatch.explain.stacks import Profile

COMPILED_SHARE = 0.25  # of the baseline window's samples: the run has a compiled step
NAMED = 5  # ops named
WAIT_FOR_TRACEMALLOC = 2  # epoch records a stopped capture's read waits for tracemalloc to stop


@dataclass
class _Capture:
    path: str
    epoch: int
    timer: threading.Timer
    purpose: str  # "baseline" or "slow"
    waited: int = 0  # epoch records its read waited (tracemalloc was tracing)


class Captures:
    """The profiler's captures of one run. `profiler()` gives the framework's profiler
    (start(dir) -> bool, stop(), op_seconds(dir)) or None; `profile_dir()` where captures go.
    start() and the epoch records' stop() run on the training thread; the timer's stop()
    on its own (torch's profiler carries that one out at the training thread's next step)."""

    def __init__(
        self,
        profiler: Callable[[], Any],
        profile_dir: Callable[[], str] | None,
        steps: float = 3.0,
        min_seconds: float = 0.2,
        limit: float = 10.0,
    ) -> None:
        self._profiler_of = profiler
        self.profiler: Any = None
        self.profile_dir = profile_dir
        self.steps, self.min_seconds, self.limit = steps, min_seconds, limit
        self._armed: str | None = None
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
        if purpose in self._done or self.profile_dir is None:
            return
        self.profiler = self.profiler or self._profiler_of()
        if self.profiler is not None:
            self._armed = purpose

    def on_epoch(self, epoch: int, seconds: float, steps: int | None) -> dict[str, Any] | None:
        """An epoch record: the open capture ends (if its time limit has not ended it), an
        armed one begins. Returns the explain record's fields of a slow capture that ended."""
        out = self._read(epoch) or self._close(epoch)
        if (
            self._armed is not None
            and self._open is None
            and self._stopped is None
            and self.profile_dir is not None
        ):
            purpose, self._armed = self._armed, None
            self._done.add(purpose)
            path = self.profile_dir() + ("/baseline" if purpose == "baseline" else "")
            step = seconds / steps if steps else seconds
            longer = 2.0 if purpose in self._again else 1.0
            length = min(self.limit, longer * max(self.min_seconds, 0.1 * seconds, self.steps * step))
            if self.profiler.start(path):
                timer = threading.Timer(length, self.profiler.stop)
                timer.daemon = True
                timer.name = "epochwatch-explain-profile"
                timer.start()
                self._open = _Capture(path, epoch, timer, purpose)
        return out

    def _close(self, epoch: int) -> dict[str, Any] | None:
        capture, self._open = self._open, None
        if capture is None:
            return None
        capture.timer.cancel()
        self.profiler.stop()
        self._stopped = capture
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
        seconds = self._seconds(capture.path)
        if seconds is None and capture.purpose not in self._again:
            # No step completed inside it (a loaded host made the steps slower than the
            # epoch before said): once more, twice as long, rather than an empty answer.
            self._again.add(capture.purpose)
            self._armed = capture.purpose
            return None
        if capture.purpose == "baseline":
            self._base, self._base_seconds = capture.path, seconds
            return None
        ops = grown_ops(self._base_seconds, seconds)
        return {
            "method": "profiler",
            "epoch": epoch,
            "epochs": [capture.epoch + 1],
            "profile_dir": str(Path(capture.path)),
            "baseline_profile_dir": self._base,
            "ops": ops,
            "where": [],
            "summary": describe_ops(
                ops, self._base is not None, capture.path, self._how_to_open(capture.path)
            ),
        }

    def _how_to_open(self, path: str) -> str | None:
        how = getattr(self.profiler, "how_to_open", None)
        return str(how(path)) if callable(how) else None

    def _seconds(self, path: str | None) -> dict[str, float] | None:
        found = self.profiler.op_seconds(path) if path is not None else None
        return found[0] if found else None

    def close(self) -> None:
        self._stopped = None
        capture, self._open = self._open, None
        if capture is not None:
            capture.timer.cancel()
            self.profiler.stop()


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
