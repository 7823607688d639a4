"""Which places hold the time an epoch gained: a slow window's profile against the baseline's.

Each place's seconds per epoch is its share of a window's samples times the mean epoch
length the window covered; what it added is the slow window's figure less the baseline's.
The named places are those with the most added time, each with its share of all the time
added (the sum of the places that grew), so "74% in Grow.on_train_batch_end" reads as
"three quarters of what the epoch gained is there".
"""

from __future__ import annotations

from typing import Any

from epochwatch.explain.stacks import Profile

NAMED = 3  # at most this many places named
MIN_SHARE = 0.10  # below this share of the added time a place is not named


def added_time(base: Profile | None, slow: Profile) -> list[dict[str, Any]]:
    """The places that hold most of the added time, largest first, as `where` entries."""
    places = set(slow.places) | (set(base.places) if base is not None else set())
    rows = []
    for place in places:
        before = base.per_epoch(place) if base is not None else 0.0
        after = slow.per_epoch(place)
        if after > before:
            rows.append((after - before, before, after, place))
    total = sum(r[0] for r in rows)
    if total <= 0:
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
        elif w["category"] not in ("user code", "framework", "epochwatch"):
            label = f"{label} (called from {w['function']}, {w['site']})" if w["site"] else label
        parts.append(f"{round(100 * w['share'])}% {label}")
    return "the added time is in " + "; ".join(parts)
