"""Finding the parent run of a restore that arrives alone, from its `parent` field.

The hook (at restore time), `report` (from scan.py's lineage) or the daemon writes into a
restore record where the parent's trace is (`Link.parent_field`). A run analyzed alone
follows that field to the trace. Loading a trace costs as much as reading it, and the
online analysis judges restores after every epoch, so the loaded parents are kept in a
ParentCache: an explicit object owned by whoever runs the analysis (the OnlineAnalyzer for
its run, `report`/`check` for their files, one `analyze` call otherwise), never module
state.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from epochwatch.analysis.restore.lineage import MATCH_SHA256, Link, saved_at
from epochwatch.analysis.run import Run, load_run
from epochwatch.trace.reader import TraceError

Record = dict[str, Any]

# Parent traces kept loaded (first in, first out): a report rarely has more parents at once.
CACHE_LIMIT = 8


def read_parent(path: Path, max_bytes: int | None = None) -> Run | None:
    """The run in a parent's trace; None when it is not a readable trace (or is over `max_bytes`)."""
    try:
        if not path.is_file():
            return None
        if max_bytes is not None and path.stat().st_size > max_bytes:
            return None
        return load_run(path)
    except (TraceError, OSError):
        return None


class ParentCache:
    """Parent runs by trace path: `known` ones the caller already holds, and up to `limit`
    loaded here (a trace that could not be read is remembered as None)."""

    def __init__(self, known: Iterable[Run] = (), limit: int = CACHE_LIMIT) -> None:
        self.limit = limit
        self._known: dict[str, Run] = {}
        self._loaded: dict[str, Run | None] = {}
        self.add(known)

    def add(self, runs: Iterable[Run]) -> None:
        """Runs the caller has loaded already: a `parent` field naming their trace gets these."""
        for run in runs:
            if run.path is not None:
                self._known[os.path.abspath(run.path)] = run

    def get(self, path: Path) -> Run | None:
        known = self._known.get(os.path.abspath(path))
        if known is not None:
            return known
        key = str(path)
        if key not in self._loaded:
            if len(self._loaded) >= self.limit:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[key] = read_parent(path)
        return self._loaded[key]


def parent_from_record(run: Run, restore: Record, parents: ParentCache) -> tuple[Run, Link] | None:
    """Follow the `parent` field of a restore record to the parent's trace and its save."""
    info = restore.get("parent")
    if not isinstance(info, dict) or not isinstance(info.get("trace"), str):
        return None
    trace = info["trace"]
    candidates = [Path(trace)]
    if run.path is not None:  # traces gathered elsewhere: look next to this run's trace too
        candidates.append(run.path.parent / Path(trace).name)
    for path in candidates:
        parent = parents.get(path)
        if parent is None:
            continue
        save = _matching_save(parent, info)
        if save is not None:
            match = str(info.get("match", MATCH_SHA256))
            return parent, Link(run.run_id, parent.run_id, restore, save, match)
    return None


def _matching_save(parent: Run, info: dict[str, Any]) -> Record | None:
    """The newest save of the field's bytes, at the time the field says where one matches."""
    sha, at = info.get("save_sha256"), info.get("saved_at")
    if not isinstance(at, int | float) or isinstance(at, bool):
        at = None  # a trace's field, so anything: a time that is no number matches any
    same = [save for save in parent.saves if sha is not None and save.get("sha256") == sha]
    timed = (save for save in reversed(same) if at is None or abs(saved_at(save) - at) < 1e-3)
    return next(timed, same[-1] if same else None)
