"""Runs as the daemon sees them: its status socket, polled once per refresh.

The status reply has the newest numbers (epoch, last epoch time, RSS, findings); where
the run's trace file is readable by us (our own runs, or root), it is tailed as well for
what the reply lacks: the epoch-time history, GPU memory, retraces, the loss. A daemon
that goes away while `top` runs is a line on the screen, not a crash: the last known
runs stay, marked stale, and the socket is tried again at every refresh.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from epochwatch.top.model import RunState, from_status
from epochwatch.top.tail import TraceTail
from epochwatch.trace.client import DaemonUnavailable, query_status

Query = Callable[[str], list[dict[str, Any]]]
KEEP_ENDED = 300.0  # seconds a run stays on screen after the daemon stopped listing it


class DaemonSource:
    def __init__(self, socket_path: str, ask: Query | None = None) -> None:
        self.socket_path = socket_path
        self.ask: Query = ask or (lambda path: query_status(path, timeout=2.0))
        self.error: str | None = None
        self.tails: dict[str, TraceTail] = {}
        self.states: dict[str, RunState] = {}
        self.ended: dict[str, tuple[float, RunState]] = {}  # no longer listed: since when

    @property
    def label(self) -> str:
        return f"daemon at {self.socket_path}"

    def check(self) -> None:
        """Raise DaemonUnavailable (one line) when the daemon cannot be asked at all: at start-up."""
        self.ask(self.socket_path)

    def poll(self) -> list[RunState]:
        try:
            entries = self.ask(self.socket_path)
        except DaemonUnavailable as exc:
            self.error = f"{exc}; showing the last known runs, retrying"
            return self._shown()
        self.error = None
        seen: dict[str, RunState] = {}
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            run_id = str(entry.get("run_id", "?"))
            seen[run_id] = self._state(run_id, entry)
            self.ended.pop(run_id, None)
        self._forget(seen)
        self.states = seen
        return self._shown()

    def _shown(self) -> list[RunState]:
        now = time.monotonic()
        return list(self.states.values()) + [s for t, s in self.ended.values() if now - t < KEEP_ENDED]

    def _forget(self, seen: Mapping[str, RunState]) -> None:
        """Runs the daemon no longer lists have ended: read their last lines, keep them a while."""
        now = time.monotonic()
        for run_id, state in self.states.items():
            if run_id in seen:
                continue
            tail = self.tails.pop(run_id, None)
            if tail is not None:
                tail.poll()  # run_end, if it was written
            if state.ended is None:
                state.ended = "ended"
            state.attached = None
            self.ended[run_id] = (now, state)
        for run_id in [r for r, (t, _) in self.ended.items() if now - t >= KEEP_ENDED]:
            del self.ended[run_id]

    def _state(self, run_id: str, entry: Mapping[str, Any]) -> RunState:
        tail = self.tails.get(run_id)
        trace = entry.get("trace")
        if tail is None and isinstance(trace, str) and os.access(trace, os.R_OK):
            tail = self.tails[run_id] = TraceTail(Path(trace), RunState(run_id=run_id))
        if tail is None:
            return from_status(entry, self.states.get(run_id))
        tail.poll()
        s = tail.state
        s.run_id = run_id
        s.attached = bool(entry.get("attached"))
        pid = entry.get("pid")
        if isinstance(pid, int) and pid > 0:
            s.pid = pid
        for f in entry.get("findings") or []:
            if isinstance(f, Mapping):
                s.add_finding(f)
        said = entry.get("retraces")
        s.retraces_said = said if isinstance(said, int) and not isinstance(said, bool) else None
        return s
