"""iterator_per_step: a loop that makes a new iterator over its dataset for each step.

`x, y = next(iter(train_ds))` inside the step loop (GM-NAS#4, continuous-thought-machines#19)
starts the input pipeline over for every batch: a tf.data `shuffle(n)` refills its buffer of
n elements and maps them again, a DataLoader starts its workers, and the step trains on the
first batch of each, so an epoch sees a random part of the data. The hook counts such
iterators in each epoch record (`new_iterators`, recorder/iterators_per_step.py), with the
script's line and, where steps are counted as they begin, the time from each to its step.
Said when the newest RECENT epochs made MANY of them, at least SHARE of their steps; one
finding per run, restated at the run's end for the whole run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import WARNING, Finding
from epochwatch.analysis.series import amount
from epochwatch.analysis.units import fmt_seconds
from epochwatch.analysis.view import RunAtEpoch

KIND = "iterator_per_step"
RECENT = 3
MANY = 20  # new iterators in the epochs judged, at least
SHARE = 0.5  # of their steps
HINT = (
    "make the iterator once and draw every batch from it: `for x, y in train_ds:` for each epoch, or "
    "`it = iter(train_ds)` before the loop and `next(it)` inside it (`train_ds.repeat()` for more steps "
    "than one pass holds); each new iterator starts the pipeline over (refills its shuffle buffer and "
    "maps it again; a DataLoader starts its workers) for its first batch, and an epoch trains on a "
    "random part of the data, some batches twice"
)


def _made(rec: dict[str, Any]) -> dict[str, Any]:
    block = rec.get("new_iterators")
    return block if isinstance(block, dict) else {}


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.unit != "epoch" or view.last < 0 or view.done(KIND, None):
        return []
    recs = view.epoch_records()[-RECENT:]
    if not recs or not _made(recs[-1]):
        return []
    found = _finding(view, recs)
    return [found] if found is not None else []


def verdict(view: RunAtEpoch, last: Finding) -> Finding | None:
    """The whole run's new iterators at its end, where more came after it was first said."""
    if last.kind != KIND:
        return None
    found = _finding(view, view.epoch_records())
    if found is None or found.evidence["iterators"] <= amount(last.evidence.get("iterators")):
        return None
    return replace(found, epoch=last.epoch)


def _finding(view: RunAtEpoch, recs: list[dict[str, Any]]) -> Finding | None:
    made = [_made(r) for r in recs]
    count = int(sum(amount(m.get("count")) for m in made))
    steps = int(sum(amount(r.get("steps")) for r in recs))
    if count < MANY or count < SHARE * steps or count > steps + len(recs):
        return None  # few, or more than the steps they fed (a trace that says otherwise is junk)
    sites = [m["site"] for m in made if isinstance(m.get("site"), str)]
    names = [m["dataset"] for m in made if isinstance(m.get("dataset"), str)]
    evidence: dict[str, Any] = {"iterators": count, "steps": steps}
    said = f" ({count:,} for {steps:,} steps"
    if sites:
        evidence["site"] = sites[-1]
        said += f", at {sites[-1]}"
    over = "the dataset"
    if names:
        evidence["dataset"] = names[-1]
        over = f"`{names[-1]}`"
    title = f"a new iterator over {over} made for each step{said})"
    timed = [
        (amount(m.get("seconds_to_step")), amount(r.get("seconds"))) for m, r in zip(made, recs, strict=True)
    ]
    if timed and all("seconds_to_step" in m for m in made if m):
        spent, total = sum(s for s, _ in timed), sum(t for _, t in timed)
        if total > 0:
            evidence.update(seconds_to_step=round(spent, 6), epoch_seconds=round(total, 6))
            evidence["share"] = round(spent / total, 4)
            title += (
                f": {fmt_seconds(spent)} ({spent / total:.0%}) of the epochs' {fmt_seconds(total)} "
                "from each new iterator to its step"
            )
    return Finding(KIND, WARNING, title, evidence, HINT, None, view.epoch_number(view.last))


DETECTOR = Detector(name=KIND, detect=detect, persistence=1, verdict=verdict)
