"""Which run resumed from which: restores matched to saves by content hash.

A run that restored a file whose SHA-256 equals a `save` in another trace is that run's
child. The hash, not the path, is the identity: checkpoints get copied between machines,
renamed, synced to buckets and back. The path is used for one thing only: a restore whose
bytes match no save at all, but whose path was saved to before, restored something that is
not what was saved there (`checkpoint_modified`).

Two entry points:
- `build_lineage(runs)` for offline analysis (report, check, compare) over loaded runs.
- `find_parent(dirs, sha256, path, ...)` for the hook at restore time: a bounded scan of
  the trace directory for the save, so findings can appear during the resumed run. It
  reads the newest traces first, skips lines that cannot be save records without parsing
  them, and stops at a file and byte budget.

Pure Python, no numpy: the CLI and the daemon use it too.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from epochwatch.trace.reader import MAX_LINE_BYTES, TraceError, open_regular
from epochwatch.trace.run import Run

Record = dict[str, Any]

# find_parent budget: newest traces first, at most this many files and bytes read.
MAX_FILES = 200
MAX_BYTES = 512 * 1024 * 1024
_CHUNK = 1 << 20

MATCH_SHA256 = "sha256"
MATCH_PATH = "path"  # same path, different bytes: the checkpoint was modified


def saved_at(save: Record) -> float:
    """When the save finished (wall clock); records from older writers fall back to `t`."""
    value = save.get("saved_at", save.get("t", 0.0))
    return float(value) if isinstance(value, int | float) else 0.0


def restored_at(restore: Record) -> float:
    value = restore.get("restored_at", restore.get("t", 0.0))
    return float(value) if isinstance(value, int | float) else 0.0


@dataclass(frozen=True)
class Link:
    """One restore in `child` traced back to one save in `parent`.

    `match` is "sha256" (the same bytes: a real parent) or "path" (the file at the saved path
    no longer holds the saved bytes; the parent is the run that last saved there).
    """

    child: str
    parent: str
    restore: Record
    save: Record
    match: str

    def summary(self) -> dict[str, Any]:
        """The link as a plain record (report JSON, the `parent` field of a restore)."""
        out: dict[str, Any] = {
            "run_id": self.parent,
            "match": self.match,
            "save_path": self.save.get("path"),
            "saved_at": saved_at(self.save),
        }
        for key in ("sha256", "iterations", "bytes"):
            if key in self.save:
                out[f"save_{key}"] = self.save[key]
        return out


@dataclass
class Lineage:
    """Every link between the runs given to build_lineage, and lookups over them."""

    runs: dict[str, Run]
    links: list[Link] = field(default_factory=list)

    def parent_of(self, run_id: str, restore: Record) -> tuple[Run, Link] | None:
        """The parent run and the link for one restore record of `run_id`, if any."""
        for link in self.links:
            if link.child == run_id and link.restore is restore:
                parent = self.runs.get(link.parent)
                return (parent, link) if parent is not None else None
        return None

    def links_of(self, run_id: str) -> list[Link]:
        """The links where `run_id` is the child (its restores that found a save)."""
        return [link for link in self.links if link.child == run_id]

    def children_of(self, run_id: str) -> list[Link]:
        return [link for link in self.links if link.parent == run_id and link.match == MATCH_SHA256]

    def roots(self) -> list[str]:
        """Runs that are nobody's child by hash, in a stable order (run start time, id)."""
        children = {link.child for link in self.links if link.match == MATCH_SHA256}
        return sorted((r for r in self.runs if r not in children), key=self._start_key)

    def _start_key(self, run_id: str) -> tuple[float, str]:
        start = self.runs[run_id].start or {}
        t = start.get("t", 0.0)
        return (float(t) if isinstance(t, int | float) else 0.0, run_id)

    def annotate(self, run: Run) -> int:
        """Give `run`'s restore records the `parent` link this lineage found for them.

        For callers that scanned with `scan_lineage` and load each run fully later: the
        restore detector then finds the parent from the record. Matches restores by
        (restored_at, sha256, path); returns how many were linked.
        """
        count = 0
        for restore in run.restores:
            if "parent" in restore:
                continue
            for link in self.links_of(run.run_id):
                r = link.restore
                same = (restored_at(r), r.get("sha256"), r.get("path")) == (
                    restored_at(restore),
                    restore.get("sha256"),
                    restore.get("path"),
                )
                parent = self.runs.get(link.parent)
                if same and parent is not None and parent.path is not None:
                    restore["parent"] = {**link.summary(), "trace": str(parent.path)}
                    count += 1
                    break
        return count

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: `{"links": [{child, parent, match, restore_path, save_path, ...}]}`."""
        return {
            "links": [
                {
                    "child": link.child,
                    "parent": link.parent,
                    "match": link.match,
                    "restore_path": link.restore.get("path"),
                    "save_path": link.save.get("path"),
                    "format": link.restore.get("format"),
                    "sha256": link.restore.get("sha256"),
                    "save_iterations": link.save.get("iterations"),
                    "restore_iterations": link.restore.get("iterations"),
                }
                for link in self.links
            ]
        }

    def text_lines(self) -> list[str]:
        """The lineage as an indented tree, one run per line; empty when no run resumed another."""
        if not any(link.match == MATCH_SHA256 for link in self.links):
            return []
        lines: list[str] = []
        seen: set[str] = set()

        def walk(run_id: str, depth: int, via: Link | None) -> None:
            label = run_id
            if via is not None:
                label += f"  <- {os.path.basename(str(via.restore.get('path', '?')))}"
                if isinstance(via.save.get("iterations"), int):
                    label += f" (saved at step {via.save['iterations']})"
            lines.append("  " * depth + label)
            if run_id in seen:
                return
            seen.add(run_id)
            for link in sorted(self.children_of(run_id), key=lambda lk: self._start_key(lk.child)):
                walk(link.child, depth + 1, link)

        for root in self.roots():
            if self.children_of(root):
                walk(root, 0, None)
        return lines


# Runs that build_lineage has seen, by trace path: the restore detector follows a restore's
# `parent.trace` to one of these instead of reading the file again.
_KNOWN: weakref.WeakValueDictionary[str, Run] = weakref.WeakValueDictionary()


def known_run(path: str | os.PathLike[str]) -> Run | None:
    """A run already loaded by the caller of build_lineage, by its trace path."""
    return _KNOWN.get(os.path.abspath(path))


def build_lineage(runs: Iterable[Run]) -> Lineage:
    """Match every restore in `runs` to the save it restored (by hash; by path if modified).

    For a hash that several saves share (the same file saved twice, or copied), the latest
    save before the restore wins; a restore is never linked to its own run (a run that
    reloads its own checkpoint is not its own parent). A restore that has no `parent`
    field yet (the hook could not see the parent's trace, or the run went to a daemon)
    gets one, so the restore detector finds its parent from the record alone.
    """
    by_id = {run.run_id: run for run in runs}
    for run in by_id.values():
        if run.path is not None:
            _KNOWN[os.path.abspath(run.path)] = run
    saves_by_hash: dict[str, list[tuple[str, Record]]] = {}
    saves_by_path: dict[str, list[tuple[str, Record]]] = {}
    for run in by_id.values():
        for save in run.saves:
            sha = save.get("sha256")
            if isinstance(sha, str):
                saves_by_hash.setdefault(sha, []).append((run.run_id, save))
            path = save.get("path")
            if isinstance(path, str):
                saves_by_path.setdefault(path, []).append((run.run_id, save))
    lineage = Lineage(runs=by_id)
    for run in by_id.values():
        for restore in run.restores:
            link = _link_for(run.run_id, restore, saves_by_hash, saves_by_path)
            if link is not None:
                lineage.links.append(link)
                parent = by_id[link.parent]
                if "parent" not in restore and parent.path is not None:
                    restore["parent"] = {**link.summary(), "trace": str(parent.path)}
    return lineage


def annotate_restore(
    restore: Record, dirs: Sequence[str | os.PathLike[str]], run_id: str | None = None
) -> Found | None:
    """Add a `parent` field to a restore record from the traces under `dirs` (bounded).

    For a process that stores traces (the daemon): call it on each restore record before
    storing it, with the trace store's directory, so online and offline analysis see the
    link. Returns what was found; leaves the record alone when nothing matches.
    """
    sha = restore.get("sha256")
    if "parent" in restore or not isinstance(sha, str):
        return None
    found = find_parent(dirs, sha, restore.get("path"), exclude_run_id=run_id, before=restored_at(restore))
    if found is not None:
        link = Link(run_id or "", found.run_id, restore, found.save, found.match)
        restore["parent"] = {**link.summary(), "trace": str(found.trace)}
    return found


def _latest_before(candidates: Sequence[tuple[str, Record]], when: float) -> tuple[str, Record] | None:
    before = [c for c in candidates if saved_at(c[1]) <= when + 1.0] or list(candidates)
    return max(before, key=lambda c: saved_at(c[1])) if before else None


def _link_for(
    run_id: str,
    restore: Record,
    by_hash: dict[str, list[tuple[str, Record]]],
    by_path: dict[str, list[tuple[str, Record]]],
) -> Link | None:
    when = restored_at(restore)
    sha = restore.get("sha256")
    if isinstance(sha, str):
        others = [c for c in by_hash.get(sha, []) if c[0] != run_id]
        best = _latest_before(others, when)
        if best is not None:
            return Link(run_id, best[0], restore, best[1], MATCH_SHA256)
        if by_hash.get(sha):  # only our own save has these bytes: no parent, and not modified
            return None
    path = restore.get("path")
    if not isinstance(sha, str) or not isinstance(path, str):
        return None
    earlier = [
        c for c in by_path.get(path, []) if saved_at(c[1]) <= when and isinstance(c[1].get("sha256"), str)
    ]
    if not earlier:
        return None
    parent_id, save = max(earlier, key=lambda c: saved_at(c[1]))
    if save.get("sha256") == sha:
        return None
    return Link(run_id, parent_id, restore, save, MATCH_PATH)


def scan_lineage(files: Iterable[str | os.PathLike[str]]) -> Lineage:
    """The lineage of many trace files, reading only their run_start, save and restore lines.

    For `report`/`check` over a directory: a cheap first pass (a substring test per line,
    JSON parsing only for the few save/restore records), so each run can then be loaded
    and analysed one at a time with `lineage.annotate(run)` before the detectors run.
    """
    runs = []
    for f in files:
        path = Path(f)
        run = Run(run_id=path.stem, path=path)
        for line in _lines(path, MAX_BYTES):
            if b'"run_start"' not in line and b'"save"' not in line and b'"restore"' not in line:
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(rec, dict) or rec.get("type") not in ("run_start", "save", "restore"):
                continue
            if rec["type"] == "run_start":
                run.run_id = str(rec.get("run_id", run.run_id))
                run.start = {k: v for k, v in rec.items() if k != "training"}
            elif rec["type"] == "save":
                run.saves.append(rec)
            else:
                run.restores.append(rec)
        runs.append(run)
    lineage = build_lineage(runs)
    for run in runs:  # stubs: never hand them to the detector as parents
        if run.path is not None:
            _KNOWN.pop(os.path.abspath(run.path), None)
    return lineage


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
) -> Found | None:
    """The newest save of these bytes in the traces under `dirs` (or, failing that, the newest
    save to `path` with other bytes), reading at most `max_files` files and `max_bytes`.

    Files are visited newest first (by modification time); a line is parsed only if it
    contains both `"save"` and the hash or the path, so a trace of a million samples costs a
    substring search per line, not a JSON parse.
    """
    files = _newest_traces(dirs, max_files)
    sha_b = sha256.encode()
    path_b = orjson.dumps(path)[1:-1] if path else None
    budget = max_bytes
    by_path: Found | None = None
    for trace in files:
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
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(rec, dict) or rec.get("type") != "save":
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


def _newest_traces(dirs: Sequence[str | os.PathLike[str]], limit: int) -> list[Path]:
    found: list[tuple[float, Path]] = []
    for d in dirs:
        try:
            with os.scandir(d) as it:
                for entry in it:
                    if entry.name.endswith(".jsonl") and entry.is_file():
                        found.append((entry.stat().st_mtime, Path(entry.path)))
        except OSError:
            continue
    found.sort(key=lambda item: item[0], reverse=True)
    return [p for _mtime, p in found[:limit]]


def _lines(path: Path, budget: int) -> Iterable[bytes]:
    """Whole lines of a file, skipping over-long ones, stopping once `budget` bytes are read."""
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
            *complete, buf = buf.split(b"\n")
            yield from complete
            if len(buf) > MAX_LINE_BYTES:
                buf = b""
        if buf and not fh.read(1):  # a last line without newline, if the file really ended
            yield buf
