"""What a restore is compared with: the child's records after it, the parent's up to the save.

A Resume is one restore of a run with its parent (if found) and the records around it; the
checks are pure functions of a Resume. `resumes` builds one per restore, finding each
parent in the lineage the caller has, or else from the restore's `parent` field through
the caller's ParentCache. `side_by_side` builds the Resume `epochwatch compare` judges when
neither of two runs restored the other.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from epochwatch.analysis.restore.lineage import MATCH_SHA256, Lineage, Link, restored_at, saved_at, timestamp
from epochwatch.analysis.restore.parents import ParentCache, parent_from_record
from epochwatch.analysis.run import Run, model_int

Record = dict[str, Any]

# How far after the restore the post-restore checks look (epochs).
WINDOW = 10


@dataclass
class Resume:
    """One restore of `run`, with its parent (if known) and the records around it."""

    run: Run
    restore: Record
    parent: Run | None
    link: Link | None
    child_fit: Record | None = None
    # With no fit after the restore: the statistics of the first inputs it served (an
    # inference window's `inference.input_stats`), judged as a fit's inputs are.
    child_inputs: Record | None = None
    child_epochs: list[Record] = field(default_factory=list)
    parent_fit: Record | None = None
    parent_epochs: list[Record] = field(default_factory=list)
    # False when the restore names the object it restored into (`model_serial`) and no fit
    # after it trains that object: then only the checks of the file and the load run.
    trained: bool = True
    # True when two runs are compared side by side (`epochwatch compare`) rather than
    # one resuming the other: the same checks, worded without "resumed".
    compared: bool = False

    @property
    def target(self) -> str:
        return str(self.restore.get("path", "?"))

    @property
    def save(self) -> Record | None:
        return self.link.save if self.link is not None else None

    @property
    def by_hash(self) -> bool:
        return self.link is not None and self.link.match == MATCH_SHA256 and self.parent is not None

    @property
    def first_epoch(self) -> int | None:
        if self.child_epochs and isinstance(self.child_epochs[0].get("epoch"), int):
            return int(self.child_epochs[0]["epoch"])
        return None

    def parent_evidence(self) -> dict[str, Any]:
        if self.link is None:
            return {}
        out: dict[str, Any] = {"parent_run": self.link.parent}
        if self.link.save.get("path") is not None:
            out["saved_path"] = self.link.save["path"]
        if self.parent_epochs and isinstance(self.parent_epochs[-1].get("epoch"), int):
            out["parent_epoch_at_save"] = self.parent_epochs[-1]["epoch"]
        return out

    def child_start_step(self) -> tuple[int | None, str]:
        """The optimizer's step right after the restore, and where that number comes from."""
        first = self.child_epochs[0] if self.child_epochs else None
        # A PyTorch loop's epochs count optimizer steps apart from logged batches (accumulation).
        steps = first.get("optimizer_steps", first.get("steps")) if first is not None else None
        if first is not None and isinstance(first.get("iterations"), int) and isinstance(steps, int):
            return max(0, first["iterations"] - steps), "first epoch after the restore"
        opt = self.restore.get("optimizer")
        keras_file = self.restore.get("format") in ("keras", "h5", "weights.h5")
        if keras_file and isinstance(opt, dict) and isinstance(opt.get("iterations"), int):
            return opt["iterations"], "optimizer right after the restore"
        return None, ""


def build_resume(
    run: Run, restore: Record, parent: Run | None, link: Link | None, times: list[float] | None = None
) -> Resume:
    """Gather the child's records after the restore (up to the next restore) and the parent's
    records up to the save. `times`: the run's restore times, sorted (`resumes` sorts them
    once: a server that loads its model per request has thousands)."""
    r = Resume(run, restore, parent, link)
    when = restored_at(restore)
    times = sorted(restored_at(x) for x in run.restores) if times is None else times
    next_at = bisect.bisect_right(times, when + 1e-6)
    until = times[next_at] if next_at < len(times) else math.inf
    fits = [f for f in run.fits if when - 1e-3 <= timestamp(f) < until]
    serial = restore.get("model_serial")
    if isinstance(serial, int) and not isinstance(serial, bool):
        # Only a fit that trains the restored object resumes it: a loop that loads a model,
        # discards it and fits a new one has no resume to judge.
        fits = [f for f in fits if model_int(f, "serial") == serial]
        r.trained = bool(fits)
    r.child_fit = fits[0] if fits else None
    epochs = [e for e in run.epochs if when - 1e-3 <= timestamp(e, "start") < until]
    if r.child_fit is None:
        served = (e.get("inference") for e in epochs)
        r.child_inputs = next(
            (b["input_stats"] for b in served if isinstance(b, dict) and "input_stats" in b), None
        )
    if r.child_fit is not None and isinstance(serial, int):
        epochs = [e for e in epochs if e.get("fit") == r.child_fit.get("fit")]
    r.child_epochs = epochs[: WINDOW + 2] if r.trained else []
    if parent is not None and link is not None and link.match == MATCH_SHA256:
        at = saved_at(link.save)
        r.parent_fit = next((f for f in reversed(parent.fits) if timestamp(f) <= at), None)
        r.parent_epochs = [e for e in parent.epochs if timestamp(e, "start") < at]
    return r


def resumes(run: Run, lineage: Lineage | None = None, parents: ParentCache | None = None) -> list[Resume]:
    """Every restore of `run`, with its parent from the lineage or, failing that, the record.

    Without `parents`, traces named in `parent` fields are read for this call alone.
    """
    parents = ParentCache() if parents is None else parents
    out = []
    times = sorted(restored_at(x) for x in run.restores)
    for restore in run.restores:
        found = lineage.parent_of(run.run_id, restore) if lineage is not None else None
        if found is None:
            found = parent_from_record(run, restore, parents)
        parent, link = found if found is not None else (None, None)
        out.append(build_resume(run, restore, parent, link, times))
    return out


def side_by_side(base: Run, new: Run) -> Resume:
    """`new` judged as if it continued `base` (two runs where neither restored the other)."""
    pseudo: Record = {"path": f"run {new.run_id}", "restored_at": timestamp(new.start or {}, "t")}
    save: Record = {"saved_at": math.inf}
    link = Link(new.run_id, base.run_id, pseudo, save, MATCH_SHA256)
    r = Resume(new, pseudo, base, link, compared=True)
    r.child_fit = new.fits[0] if new.fits else None
    r.child_epochs = list(new.epochs[: WINDOW + 2])
    r.parent_fit = base.fits[-1] if base.fits else None
    r.parent_epochs = list(base.epochs)
    return r
