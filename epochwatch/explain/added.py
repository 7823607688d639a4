"""Which places hold the time an epoch gained: a slow window's profile against the baseline's.

Each place's seconds per epoch is its share of a window's samples times the mean epoch
length the window covered; what it added is the slow window's figure less the baseline's.
The named places are those with the most added time, each with its share of all the time
added (the sum of the places that grew), so "74% in Grow.on_train_batch_end" reads as
"three quarters of what the epoch gained is there".

A step that waits for its input waits inside the compiled step (tf.data's iterator is an
op of the step), so Python frames show the wait there while the user's code that feeds the
pipeline (a generator, `PyDataset.__getitem__`) runs on tf.data's threads (a loop's wait
shows in the iterator's frames instead). When that code grew by half as much as the epoch
did or more (WAITING; of the epoch's growth, what the process's own CPU grew where that is
less: on a loaded host the rest is waiting for a core), the step's growth, up to the
pipeline's, is taken as waiting for it (for its batches, or for the GIL its Python code
holds: a producer that prefetches still slows the step by the interpreter time it takes),
not named as the step's own. A step that did more work beside a pipeline that grew much
less keeps its share.
"""

from __future__ import annotations

from typing import Any

from epochwatch.explain.frames import COMPILED, INPUT, LOOK_INSIDE, Place
from epochwatch.explain.stacks import Profile

NAMED = 3  # at most this many places named
MIN_SHARE = 0.10  # below this share of the added time a place is not named
WAITING = 0.5  # the pipeline's growth, over the epoch's, from which the step waited for it
# Places seen in the slow window fewer than MIN_SAMPLES times are noise, not places; those
# left must hold COVERED of what the epochs gained to be named at all. A healthy run's
# epochs slowed by a busier host grow everywhere alike, and the few places whose share of
# the samples rose by chance (a sample each: "50% the hook itself, 50% pythonify_logs" for
# 0.02 s of a 0.9 s rise) would be named for a rise they do not hold.
COVERED = 0.25
MIN_SAMPLES = 3


def _feeding(place: Place) -> bool:
    """User code feeding the pipeline on another thread (frames.classify_other): labelled
    with its function, where the training thread's own iterator frames are not."""
    return place.category == INPUT and place.label != INPUT


def _own_growth(base: Profile | None, slow: Profile) -> float:
    """What the epochs gained that the process did: the wall time they gained, or the
    process's CPU per epoch gained where that is less (a busier host's share is not the
    process's: its threads waited for a core)."""
    if base is None:
        return float("inf")
    grew = slow.epoch_seconds - base.epoch_seconds
    if slow.process_cpu_per_epoch is not None and base.process_cpu_per_epoch is not None:
        grew = min(grew, slow.process_cpu_per_epoch - base.process_cpu_per_epoch)
    return grew


def _by_key(profile: Profile | None) -> dict[tuple[str, str], Place]:
    return {(p.category, p.label): p for p in profile.places} if profile is not None else {}


def _waits(place: Place) -> bool:
    """Where the training thread waits for its next batch: inside the compiled step (a
    fit's iterator is an op of it) or in the iterator's own frames (a loop's `for x in ds`)."""
    return place.category == COMPILED or (place.category == INPUT and not _feeding(place))


def added_time(
    base: Profile | None, slow: Profile, measured: tuple[Place, float, float] | None = None
) -> list[dict[str, Any]]:
    """The places that hold most of the added time, largest first, as `where` entries.
    `measured`: the input producer's place with its clocked seconds per epoch (baseline,
    slow), which stands in for its samples: a sampler on a Python thread sees a producer
    on tf.data's threads only when the producer yields the GIL, mostly between its calls."""
    # A place is one (category, label) in each window (stacks.merged), its site the line
    # sampled most there: the same place when the two windows' busiest lines differ (an
    # eager torch step's time spread over its forward, backward and update lines).
    slow_at, base_at = _by_key(slow), _by_key(base)
    rows = []
    own = 0.0  # what the look inside itself added
    for key in set(slow_at) | set(base_at):
        place = slow_at.get(key) or base_at[key]
        if measured is not None and _feeding(place):
            continue  # the clock says it
        before = base.per_epoch(base_at[key]) if base is not None and key in base_at else 0.0
        after = slow.per_epoch(slow_at[key]) if key in slow_at else 0.0
        if place.label == LOOK_INSIDE:
            # The windows' own work (a capture's read): the hook's overhead, not the run's.
            own += max(0.0, after - before)
        elif after > before:
            rows.append((after - before, before, after, place))
    if measured is not None and measured[2] > measured[1]:
        place, before, after = measured
        rows.append((after - before, before, after, place))
    fed = sum(r[0] for r in rows if _feeding(r[3]))
    step = sum(r[0] for r in rows if _waits(r[3]))
    if step > 0 and fed > 0 and fed >= WAITING * _own_growth(base, slow):  # the step waited for it
        kept = 1.0 - min(fed, step) / step
        rows = [(r[0] * kept, *r[1:]) if _waits(r[3]) else r for r in rows]
        rows = [r for r in rows if r[0] > 0]
    clocked = measured[0] if measured is not None else None
    rows = [r for r in rows if r[3] is clocked or slow.places[r[3]] >= MIN_SAMPLES]
    total = sum(r[0] for r in rows)
    growth = _own_growth(base, slow) - own
    gained = base is None or slow.epoch_seconds > base.epoch_seconds
    if total <= 0 or total < COVERED * growth or not gained:
        return []
    rows.sort(key=lambda r: r[0], reverse=True)
    out: list[dict[str, Any]] = []
    for added, before, after, place in rows[:NAMED]:
        share = added / total
        if share < MIN_SHARE and out:
            break
        out.append(
            {
                **place.to_dict(),
                "share": round(share, 3),
                "added_seconds_per_epoch": round(added, 6),
                "seconds_per_epoch": round(after, 6),
                "baseline_seconds_per_epoch": round(before, 6),
                "samples": slow.places[place],
            }
        )
    return out


def describe(where: list[dict[str, Any]]) -> str:
    """One sentence for the console and the report."""
    if not where:
        return "no place holds the added time (sampled stacks look as they did at the baseline)"
    parts = []
    for w in where:
        label = w["label"]
        if w["category"] == "callback":
            label = f"callback {label} ({w['site']})"
        elif w["category"] == INPUT and w["label"] != INPUT:  # the producer's own code
            label = f"{label} ({w['site']})"
        elif w["category"] not in ("user code", "framework", "epochwatch"):
            label = f"{label} (called from {w['function']}, {w['site']})" if w["site"] else label
        parts.append(f"{round(100 * w['share'])}% {label}")
    return "the added time: " + "; ".join(parts)
