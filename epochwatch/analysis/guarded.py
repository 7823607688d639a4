"""Online detection behind a guard, the one way the hook and the daemon run `OnlineAnalyzer`.

A missing package or a failing detector costs one message (`on_error`, once) and switches
detection off for that run, never the training or the daemon. The analyzer is built at the
first record, so whoever makes this (the training thread) does not pay for importing the
detectors: the hook's analysis thread, or the daemon's first record, does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Record = dict[str, Any]


class GuardedAnalyzer:
    """An OnlineAnalyzer with episode updates (the hook and the daemon both write them to the
    trace); `parents`: where restores find their parent runs (the daemon's, by uid)."""

    def __init__(
        self, on_error: Callable[[BaseException], None], *, enabled: bool = True, parents: Any = None
    ) -> None:
        self._on_error = on_error
        self._parents = parents
        self._impl: Any = None
        self.failed = not enabled

    def add(self, rec: Record, *, evaluate: bool = True) -> list[Record]:
        """The finding records new with `rec`, none once failed. The first record builds the
        analyzer (from it, when it is a run_start; a second run_start is ignored)."""
        if self._impl is None:
            start = rec if rec.get("type") == "run_start" else None
            self._call(lambda: self._build(start))
            if start is not None:
                return []
        impl = self._impl
        return self._call(lambda: impl.add(rec, evaluate=evaluate)) if impl is not None else []

    def finish(self) -> list[Record]:
        """The verdict at the run's end (before run_end is written)."""
        impl = self._impl
        return self._call(impl.finish) if impl is not None else []

    def footprint_bytes(self) -> int:
        """What the analyzer holds (its run's columns and records): part of `hook_bytes`."""
        impl = self._impl
        return int(impl.run.footprint_bytes()) if impl is not None else 0

    def _build(self, run_start: Record | None) -> None:
        from epochwatch.analysis.online import OnlineAnalyzer

        self._impl = OnlineAnalyzer(run_start, updates=True, parents=self._parents)

    def _call(self, fn: Callable[[], Any]) -> list[Record]:
        if self.failed:
            return []
        try:
            found = fn()
        except Exception as exc:
            self.failed = True
            self._on_error(exc)
            return []
        return [f for f in (found or []) if isinstance(f, dict)]
