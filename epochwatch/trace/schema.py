"""Record types and the schema version of the JSON Lines trace.

A trace is one file per run; every line is one JSON object with at least `type` and
`run_id`. docs/trace-format.md is the human contract; this module is the code's.
Readers must accept unknown fields and unknown record types, so adding either is not
a schema change. SCHEMA_VERSION only moves when a field changes meaning or goes away.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final

# 2: `dirs` (epoch, sample) is a list of {path, role, bytes, files, ...}, not a dict keyed by
# path, so tools can query it across runs and hosts; readers accept both (dir_entries).
SCHEMA_VERSION: Final = 2

RUN_START: Final = "run_start"
FIT_START: Final = "fit_start"
EPOCH: Final = "epoch"
INTERVAL: Final = "interval"  # a stretch of steps inside a long epoch (see epochwatch/intervals.py)
FIT_END: Final = "fit_end"
SAVE: Final = "save"
RESTORE: Final = "restore"
SAMPLE: Final = "sample"
FINDING: Final = "finding"
FINDING_UPDATE: Final = "finding_update"  # a finding again: its problem grew, or ended
FINDINGS: Final = frozenset({FINDING, FINDING_UPDATE})
NOTICE: Final = "notice"
EXPLAIN: Final = "explain"  # what a look inside found: the code behind a slowdown or a leak
RUN_END: Final = "run_end"

# How a run ended (`run_end.ended`). A trace with no run_end "ended abruptly".
ENDED_COMPLETED: Final = "completed"
ENDED_RAISED: Final = "raised"
ENDED_INTERRUPTED: Final = "interrupted"
ENDED_VANISHED: Final = "vanished"

# What a watched directory is for (`watched` in fit_start, `dirs.<path>.role` in epochs and
# samples, the `watch` notice); the daemon reads any other role a client sends as "user".
ROLES: Final = frozenset({"checkpoint", "backup", "tensorboard", "temp", "data", "user"})

Record = dict[str, Any]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def record(type_: str, run_id: str, **fields: Any) -> Record:
    """Build a record with the fields every line carries, `t` being wall-clock seconds."""
    return {"type": type_, "run_id": run_id, "t": time.time(), **fields}


def safe_run_id(raw: str, max_len: int = 128) -> str:
    """A run id that is also a safe file name: no separators, no dot-only names.

    Run ids become file names (`<run_id>.jsonl`), so anything that could climb out of
    a directory or hide a file is replaced, never trusted.
    """
    cleaned = _UNSAFE.sub("_", raw).strip("._-")[:max_len]
    return cleaned or "run"


def dirs_block(totals: Mapping[str, Mapping[str, Any]]) -> list[Record]:
    """A watcher's totals ({path: {bytes, files, role, ...}}) as the trace's `dirs` list."""
    return [{"path": path, **block} for path, block in totals.items()]


def dir_entries(block: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(path, entry) for each watched directory of a `dirs` block, in either form:
    the list of schema 2 or the {path: entry} dict of schema 1; anything else is skipped."""
    if isinstance(block, Mapping):
        for path, entry in block.items():
            if isinstance(entry, Mapping):
                yield str(path), entry
    elif isinstance(block, list):
        for entry in block:
            if isinstance(entry, Mapping) and isinstance(entry.get("path"), str):
                yield entry["path"], entry
