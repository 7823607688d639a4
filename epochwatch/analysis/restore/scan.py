"""Lineage from trace files without loading them whole.

- `scan_lineage(files)` for `report`/`check` over many traces: only the run_start, save and
  restore lines are parsed, so each run can then be loaded and analyzed alone
  (`Lineage.annotate`).
- `find_parent(dirs, sha256, path, ...)` for the hook at restore time: a bounded scan of
  the trace directory for the save, so findings can appear during the resumed run. It
  reads the newest traces first, skips lines that cannot be save records without parsing
  them, and stops at a file and byte budget.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from epochwatch.analysis.restore.lineage import (
    MATCH_PATH,
    MATCH_SHA256,
    Lineage,
    build_lineage,
    saved_at,
)
from epochwatch.analysis.run import Run
from epochwatch.trace.reader import MAX_LINE_BYTES, TraceError, open_regular, record_of

Record = dict[str, Any]

# find_parent budget: newest traces first, at most this many files and bytes read.
MAX_FILES = 200
MAX_BYTES = 512 * 1024 * 1024
_CHUNK = 1 << 20


def scan_lineage(files: Iterable[str | os.PathLike[str]]) -> Lineage:
    """The lineage of many trace files, reading only their run_start, save and restore lines.

    For `report`/`check` over a directory: a cheap first pass (a substring test per line,
    JSON parsing only for the few save/restore records), so each run can then be loaded
    and analyzed one at a time with `lineage.annotate(run)` before the detectors run.
    The lineage's runs are stubs (run_start, saves, restores): never judge against them.
    """
    runs = []
    for f in files:
        path = Path(f)
        run = Run(run_id=path.stem, path=path)
        for line in _lines(path, MAX_BYTES, _LINEAGE_TYPES):
            if b'"run_start"' not in line and b'"save"' not in line and b'"restore"' not in line:
                continue
            rec = record_of(line)
            if rec is None or rec["type"] not in ("run_start", "save", "restore"):
                continue
            if rec["type"] == "run_start":
                run.run_id = str(rec.get("run_id", run.run_id))
                run.start = {k: v for k, v in rec.items() if k != "training"}
            elif rec["type"] == "save":
                run.saves.append(rec)
            else:
                run.restores.append(rec)
        runs.append(run)
    return build_lineage(runs)


# -- at restore time, from the hook ---------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A save found in a trace file at restore time."""

    trace: Path
    run_id: str
    save: Record
    match: str


def find_parent(
    dirs: Sequence[str | os.PathLike[str]],
    sha256: str,
    path: str | None,
    *,
    exclude_run_id: str | None = None,
    before: float | None = None,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
    files: Sequence[Path] = (),
) -> Found | None:
    """The newest save of these bytes in the traces under `dirs` (or, failing that, the newest
    save to `path` with other bytes), reading at most `max_files` files and `max_bytes`.

    Files are visited newest first (by modification time); a line is parsed only if it
    contains both `"save"` and the hash or the path, so a trace of a million samples costs a
    substring search per line, not a JSON parse.
    """
    traces = _newest_traces(dirs, files, max_files)
    sha_b = sha256.encode()
    path_b = orjson.dumps(path)[1:-1] if path else None
    budget = max_bytes
    by_path: Found | None = None
    for trace in traces:
        if exclude_run_id and trace.stem == exclude_run_id:
            continue
        best: Record | None = None
        path_best: Record | None = None
        for line in _lines(trace, budget):
            budget -= len(line) + 1
            if b'"save"' not in line:
                continue
            has_sha = sha_b in line
            if not has_sha and (path_b is None or path_b not in line):
                continue
            rec = record_of(line)
            if rec is None or rec["type"] != "save":
                continue
            if before is not None and saved_at(rec) > before + 1.0:
                continue
            if rec.get("sha256") == sha256:
                if best is None or saved_at(rec) >= saved_at(best):
                    best = rec
            elif (
                path is not None
                and rec.get("path") == path
                and isinstance(rec.get("sha256"), str)
                and (path_best is None or saved_at(rec) >= saved_at(path_best))
            ):
                path_best = rec
        if best is not None:
            return Found(trace, str(best.get("run_id", trace.stem)), best, MATCH_SHA256)
        if path_best is not None and (by_path is None or saved_at(path_best) > saved_at(by_path.save)):
            by_path = Found(trace, str(path_best.get("run_id", trace.stem)), path_best, MATCH_PATH)
        if budget <= 0:
            break
    return by_path


def _newest_traces(dirs: Sequence[str | os.PathLike[str]], files: Sequence[Path], limit: int) -> list[Path]:
    found: dict[Path, float] = {}
    for d in dirs:
        try:
            with os.scandir(d) as it:
                for entry in it:
                    if entry.name.endswith(".jsonl") and entry.is_file():
                        found[Path(entry.path)] = entry.stat().st_mtime
        except OSError:
            continue
    for f in files:
        try:
            st = f.lstat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found[f] = st.st_mtime
    return sorted(found, key=found.__getitem__, reverse=True)[:limit]


_LINEAGE_TYPES = (b'"run_start"', b'"save"', b'"restore"')


def _lines(path: Path, budget: int, needles: tuple[bytes, ...] = ()) -> Iterable[bytes]:
    """Whole lines of a file, skipping over-long ones, stopping once `budget` bytes are read.

    With `needles`, a chunk holding none of them is passed over without splitting it into
    lines (its lines could not be wanted): most of a long daemon trace is samples and
    epochs, and the lineage scan reads every file of a report once more for a few lines.
    """
    try:
        fh = open_regular(path)  # a FIFO among the traces must not block the scan
    except TraceError:
        return
    with fh:
        buf = b""
        read = 0
        while read < budget:
            chunk = fh.read(min(_CHUNK, budget - read))
            if not chunk:
                break
            read += len(chunk)
            buf += chunk
            if needles and not any(n in buf for n in needles):
                buf = buf[buf.rfind(b"\n") + 1 :]  # keep only the unfinished last line
                if len(buf) > MAX_LINE_BYTES:
                    buf = b""
                continue
            *complete, buf = buf.split(b"\n")
            yield from complete
            if len(buf) > MAX_LINE_BYTES:
                buf = b""
        if buf and not fh.read(1):  # a last line without newline, if the file really ended
            yield buf
