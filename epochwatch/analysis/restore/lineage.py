"""Which run resumed from which: restores matched to saves by content hash.

A run that restored a file whose SHA-256 equals a `save` in another trace is that run's
child. The hash, not the path, is the identity: checkpoints get copied between machines,
renamed, synced to buckets and back. The path is used for one thing only: a restore whose
bytes match no save at all, but whose path was saved to before, restored something that is
not what was saved there (`checkpoint_modified`).

This module works on runs in memory (`build_lineage`); scan.py builds the same from trace
files without loading them whole, and finds a parent at restore time. A link travels in
its restore record as the `parent` field (`Link.parent_field`), which is how a run analyzed
alone later finds its parent (parents.py).

Pure Python, no numpy: the CLI and the daemon use it too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from epochwatch.analysis.run import Run

Record = dict[str, Any]

MATCH_SHA256 = "sha256"
MATCH_PATH = "path"  # same path, different bytes: the checkpoint was modified


def timestamp(rec: Record, key: str = "t") -> float:
    """A record's wall-clock time `key`; records from older writers fall back to `t`."""
    value = rec.get(key, rec.get("t", 0.0))
    return float(value) if isinstance(value, int | float) else 0.0


def saved_at(save: Record) -> float:
    """When the save finished."""
    return timestamp(save, "saved_at")


def restored_at(restore: Record) -> float:
    return timestamp(restore, "restored_at")


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

    def parent_field(self, trace: str | os.PathLike[str]) -> dict[str, Any]:
        """The `parent` field of a restore record for this link (docs/trace-format.md): the
        summary and the parent's trace, which a run analyzed alone later follows."""
        return {**self.summary(), "trace": str(trace)}


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
        return (timestamp(self.runs[run_id].start or {}), run_id)

    def annotate(self, run: Run) -> int:
        """Give `run`'s restore records the `parent` link this lineage found for them.

        For callers that scanned with `scan.scan_lineage` and load each run fully later: the
        restore detector then finds the parent from the record. Matches restores by
        (restored_at, sha256, path); returns how many were linked.
        """
        count = 0
        for restore in run.restores:
            if "parent" in restore:
                continue
            wanted = (restored_at(restore), restore.get("sha256"), restore.get("path"))
            for link in self.links_of(run.run_id):
                r = link.restore
                same = (restored_at(r), r.get("sha256"), r.get("path")) == wanted
                parent = self.runs.get(link.parent)
                if same and parent is not None and parent.path is not None:
                    restore["parent"] = link.parent_field(parent.path)
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


def build_lineage(runs: Iterable[Run]) -> Lineage:
    """Match every restore in `runs` to the save it restored (by hash; by path if modified).

    For a hash that several saves share (the same file saved twice, or copied), the latest
    save before the restore wins; a restore is never linked to its own run (a run that
    reloads its own checkpoint is not its own parent). A restore that has no `parent`
    field yet (the hook could not see the parent's trace, or the run went to a daemon)
    gets one, so the restore detector finds its parent from the record alone.
    """
    by_id = {run.run_id: run for run in runs}
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
                    restore["parent"] = link.parent_field(parent.path)
    return lineage


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
