"""Small unicode sparklines: a series squeezed into a fixed width of block characters.

Scaled as the report's plots are (plots.min_span: a range spans at least a fifth of its
level), so a flat RSS (541 -> 541 MiB) draws flat in `top` and the text report too,
not as a rise from the lowest block to the highest.
"""

from __future__ import annotations

from collections.abc import Sequence

from epochwatch.report.plots import min_span

BLOCKS = "▁▂▃▄▅▆▇█"


def buckets(values: Sequence[float], width: int) -> list[float]:
    """Mean of each of `width` equal slices (NaN ignored; an empty slice is NaN)."""
    n = len(values)
    if n <= width:
        return list(values)
    out: list[float] = []
    for b in range(width):
        lo, hi = b * n // width, (b + 1) * n // width
        part = [v for v in values[lo:hi] if v == v]
        out.append(sum(part) / len(part) if part else float("nan"))
    return out


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """'▁▂▄█'-style line; absent values are spaces; a flat series is all '▁'."""
    pts = buckets(values, width)
    present = [v for v in pts if v == v]
    if not present:
        return ""
    lo, hi = min(present), max(present)
    if hi > lo:
        lo, hi = min_span(lo, hi)
    span = hi - lo
    chars = []
    for v in pts:
        if v != v:
            chars.append(" ")
        elif span <= abs(hi) * 1e-9 or span == 0:
            chars.append(BLOCKS[0])
        else:
            chars.append(BLOCKS[min(len(BLOCKS) - 1, int((v - lo) / span * len(BLOCKS)))])
    return "".join(chars)
