"""Online detection behind a guard, the one way the hook and the daemon run `OnlineAnalyzer`.

A missing package or a failing detector must cost one message and switch detection off
for that run, never the training or the daemon. The analyzer is built at the first record,
so whoever makes this (the training thread, the daemon's loop) does not pay for importing
the detectors: the hook's analysis thread, or the daemon's first record, does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Record = dict[str, Any]


class GuardedAnalyzer:
    """`add`, `start` and `finish` of an OnlineAnalyzer (with episode updates, which the hook
    and the daemon both write to the trace); after the first failure `on_error(exc)` has been
    called once and every call returns no findings."""

    unavailable: str | None = None  # why online detection is off for every run (a missing package)

    def __init__(
        self, on_error: Callable[[BaseException], None], *, enabled: bool = True, parents: Any = None
    ) -> None:
        self._on_error = on_error
        self._parents = parents  # where restores find their parent runs (the daemon's, by uid)
        self._impl: Any = None
        self.failed = not enabled or GuardedAnalyzer.unavailable is not None

    def start(self, run_start: Mapping[str, Any] | None) -> None:
        """Build the analyzer now, from run_start (a second run_start is ignored)."""
        if self.failed or self._impl is not None:
            return
        try:
            from epochwatch.analysis.online import OnlineAnalyzer
        except ImportError as exc:
            GuardedAnalyzer.unavailable = str(exc)
            self._fail(exc)
            return
        try:
            self._impl = OnlineAnalyzer(run_start, updates=True, parents=self._parents)
        except Exception as exc:
            self._fail(exc)

    def add(self, rec: Record, *, evaluate: bool = True) -> list[Record]:
        """The finding records new with `rec` (none once failed)."""
        if self._impl is None and rec.get("type") == "run_start":
            self.start(rec)
            return []
        if self._impl is None:
            self.start(None)
        impl = self._impl
        return self._call(lambda: impl.add(rec, evaluate=evaluate)) if impl is not None else []

    def finish(self) -> list[Record]:
        """The verdict at the run's end (before run_end is written)."""
        impl = self._impl
        return self._call(impl.finish) if impl is not None else []

    def _call(self, fn: Callable[[], Any]) -> list[Record]:
        if self.failed:
            return []
        try:
            found = fn()
        except Exception as exc:
            self._fail(exc)
            return []
        return [f for f in (found or []) if isinstance(f, dict)]

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        self._on_error(exc)
