"""Run a sampler that can hang (NVML) on its own thread, never longer than a deadline on ours.

A driver call that hangs for two seconds must not add two seconds to every epoch. So the
training thread only hands the call to a worker thread and waits at most `deadline`
for it. A call that finishes late is not lost: its reading goes into the next epoch's
record. A call still running after `hang_after` means the source is stuck: `sample()`
raises SamplerHung once, the Recorder's Guard says so in one line and switches the
sampler off, and the worker (a daemon thread) is left to finish or die with the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from epochwatch.samplers.base import Sampler

DEADLINE = 0.1  # the longest an epoch end (or the run's start, for the inventory) waits for an answer
# One call running this long is a hang, not a slow reading (nvmlInit without persistence
# mode takes seconds on a large node; that is slow, not stuck).
HANG_AFTER = 10.0


class SamplerHung(RuntimeError):
    """The sampler's source stopped answering; the sampler is switched off."""


class _Job:
    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.submitted = time.monotonic()
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class BackgroundSampler:
    """A Sampler (see base.py) whose calls run on one worker thread, each within a deadline."""

    def __init__(
        self,
        sampler: Sampler,
        *,
        deadline: float = DEADLINE,
        hang_after: float | None = None,
    ) -> None:
        self.name = sampler.name
        self._sampler = sampler
        self.deadline = deadline
        self.hang_after = HANG_AFTER if hang_after is None else hang_after
        self._busy_since: float | None = None  # when the call now running started
        self._jobs: list[_Job | None] = []
        self._cv = threading.Condition()
        self._job: _Job | None = None
        self._hung = False
        self._thread: threading.Thread | None = None
        self._inventory: _Job | None = None  # asked for early by prime()
        self.cpu_seconds = 0.0  # the worker thread's CPU time so far: the hook's overhead counts it

    # -- the Sampler protocol, on the training thread ------------------------------------------

    def sample(self) -> dict[str, Any] | None:
        """The freshest reading that is ready within the deadline (None when none is).

        Raises SamplerHung when a call has been running longer than `hang_after`, and
        whatever the wrapped sampler raised (the caller's Guard handles both once).
        """
        if self._hung or getattr(self._sampler, "unavailable", False):
            return None  # hung, or no GPU at all: no hand-off to the worker every epoch
        previous = self._job
        if previous is not None and not previous.done.is_set():
            job = previous  # still running: wait for it, not for a second one behind it
            previous = None
        else:
            job = self._job = self._submit(self._sampler.sample)
        result = self._wait(job, self.deadline)
        if job.done.is_set():
            self._job = None
            return result
        if previous is not None:
            return previous.outcome()  # the reading that came in after the last epoch's deadline
        return None

    def prime(self) -> None:
        """Start the first reading and the inventory now, without waiting for either (the
        first call pays the driver's initialisation, up to seconds): `inventory()` then
        finds its answer ready, and the first epoch's reading has a previous one."""
        if self._hung or self._job is not None:
            return
        self._job = self._submit(self._sampler.sample)
        inventory = getattr(self._sampler, "inventory", None)
        if callable(inventory) and self._inventory is None:
            self._inventory = self._submit(inventory)

    def inventory(self) -> dict[str, Any] | None:
        """The devices and driver for run_start, if they answer within the deadline: a hung or
        slow NVML start must not hold the training thread at the run's start (the warm-up
        primed it long before, usually). Without it the run starts without them, its epochs
        get GPU fields once NVML answers, and a hang is said once (SamplerHung)."""
        inventory = getattr(self._sampler, "inventory", None)
        if not callable(inventory) or self._hung:
            return None
        job, self._inventory = self._inventory or self._submit(inventory), None
        return self._wait(job, self.deadline)

    def close(self) -> None:
        """Close the wrapped sampler on the worker (within the deadline) and stop the worker."""
        if self._thread is None:
            return
        if not self._hung:
            job = self._submit(self._sampler.close)
            job.done.wait(max(self.deadline, 0.5))
        with self._cv:
            self._jobs.append(None)  # the worker exits when it reaches this
            self._cv.notify()
        self._thread.join(0.5)

    # -- the worker ------------------------------------------------------------------------------

    def _submit(self, fn: Callable[[], Any]) -> _Job:
        job = _Job(fn)
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name=f"epochwatch-sampler-{self.name}", daemon=True
                )
                self._thread.start()
            self._jobs.append(job)
            self._cv.notify()
        return job

    def _wait(self, job: _Job, deadline: float) -> Any:
        """The job's outcome if it finishes within `deadline` of its submission, else None."""
        if job.done.wait(max(0.0, job.submitted + deadline - time.monotonic())):
            return job.outcome()
        busy_since = self._busy_since
        running = 0.0 if busy_since is None else time.monotonic() - busy_since
        if running > self.hang_after:
            self._hung = True
            raise SamplerHung(
                f"no answer for {running:.1f} s (its source hangs); switched off so it cannot slow training"
            )
        return None

    def _work(self) -> None:
        while True:
            with self._cv:
                while not self._jobs:
                    self._cv.wait()
                job = self._jobs.pop(0)
            if job is None:
                return
            self._busy_since = time.monotonic()
            try:
                job.result = job.fn()
            except BaseException as exc:  # handed to the training thread's Guard
                job.error = exc
            self._busy_since = None
            self.cpu_seconds = time.thread_time()
            job.done.set()
