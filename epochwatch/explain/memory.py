"""Which Python allocation sites grew, from tracemalloc slices around epoch boundaries.

tracemalloc slows every allocation while it is on (2-3 times on Python-heavy steps), so it
is never on for whole epochs: a slice (slices.py) traces from shortly before an epoch's
end to shortly after the next epoch's first steps, with a snapshot at the epoch record
between (the boundary) and one at the slice's end. Only allocations made inside the slice
are traced, so the snapshots are small. Per site (the innermost frame of the user's code
in each traceback, else the innermost frame):

- `before`: what was allocated before the boundary and is still alive at it;
- `after`: what the tail added, less what it freed of the lead's allocations.

A per-step leak grows at the same rate in both parts: that rate times the epoch's length.
A per-epoch leak (a callback's `on_epoch_end`) is a jump in one part: counted once. What a
step allocates and frees is gone from `before` at the boundary and cancels in `after`.
When RSS grew and the sites explain little of it, that is an answer too: the growth is in
native memory (the framework's runtime, C extensions, the allocator), not in Python objects.

tracemalloc is never touched when the script traces memory itself.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tracemalloc

from epochwatch.explain.frames import hook_inside, is_user, short_path, stdlib

# Frames per allocation. A tensor a tf.function call returns is allocated 10-12 frames
# below the user's line (the function's __call__, tracing_compilation, the concrete
# function, context, execute): at 8 that line was cut off and a leak of kept step outputs
# was charged to the loop's header (bench/real_scripts/tf35873). Cost (bench/explain.py,
# tracing a whole 0.25 s epoch): +222% at 16 against +200% at 8.
DEPTH = 16
NAMED = 3
MIB = 1 << 20
COUNTED = 16  # objects an epoch: a site that grows this much in number may hold native memory
AGREE = 2.0  # two parts' rates this close are one rate (_rate): a part timed over four
# steps holds three to five of them
NATIVE_SHARE = 0.1  # traced growth under this share of RSS growth: "not in Python objects"
# (a tenth, not more: what tracemalloc sees of a native leak's Python side is small)
PART_SHARE = 0.5  # ...under this share: the sites named hold part of it, the rest is native
REBUILT = 1.5  # a site's growth an epoch over this many times the RSS's is an object rebuilt
JUMP_SHARE = 0.9  # ...where this share of it was made in one go

Sizes = dict[tuple[str, int], list[int]]  # (filename, lineno) -> [bytes, objects]


def _traces(snapshot: tracemalloc.Snapshot) -> dict[tuple[tuple[str, int], ...], list[int]]:
    """[bytes, objects] per raw traceback (innermost frame first). From the snapshot's raw
    tuples where it has them: `Snapshot.statistics` and `compare_to` build a Traceback and
    a Statistic per trace in Python, 2 ms a slice of a Keras step, on the training thread."""
    out: dict[tuple[tuple[str, int], ...], list[int]] = defaultdict(lambda: [0, 0])
    raw = getattr(snapshot.traces, "_traces", None)
    rows = (
        ((t[2], t[1]) for t in raw)
        if isinstance(raw, list | tuple)
        else (
            (tuple(reversed([(f.filename, f.lineno) for f in t.traceback])), t.size) for t in snapshot.traces
        )
    )
    for traceback, size in rows:
        row = out[traceback]
        row[0] += size
        row[1] += 1
    return out


@functools.lru_cache(maxsize=4096)
def _site(traceback: tuple[tuple[str, int], ...]) -> tuple[str, int] | None:
    """The site an allocation counts for: the innermost frame of the user's code in its
    traceback (innermost first), else its innermost frame outside the standard library (a
    list `typing` builds for an isinstance check is the caller's work); None for the hook's
    own (its analysis keeps the run's series) and the interpreter's machinery."""
    if not traceback or hook_inside(tuple((f, n, "") for f, n in reversed(traceback))):
        return None
    outside = [frame for frame in traceback if not stdlib(frame[0])]
    if not outside:
        return None  # a thread's own start-up, the interpreter's machinery
    return next((frame for frame in traceback if is_user(frame[0])), outside[0])


def by_site(traces: dict[tuple[tuple[str, int], ...], list[int]]) -> Sizes:
    """[bytes, objects] per raw traceback, summed per site."""
    sizes: Sizes = defaultdict(lambda: [0, 0])
    for traceback, (size, count) in traces.items():
        key = _site(traceback)
        if key is not None:
            row = sizes[key]
            row[0] += size
            row[1] += count
    return sizes


def boundary_parts(at: tracemalloc.Snapshot, end: tracemalloc.Snapshot) -> tuple[Sizes, Sizes]:
    """(before, after) per site: alive at the boundary snapshot `at` (tracing began in the
    slice, so that is what the lead allocated and kept), and what `end` adds to it."""
    before = by_site(_traces(at))
    after: Sizes = {}
    for key, (size, count) in by_site(_traces(end)).items():
        b = before.get(key, (0, 0))
        after[key] = [size - b[0], count - b[1]]
    for key, (size, count) in before.items():
        after.setdefault(key, [-size, -count])
    return before, after


@dataclass(frozen=True)
class SliceParts:
    """One slice: per-site sizes before and after the boundary, and the parts' lengths: in
    steps where the loop said them (a Keras fit: exact), else in seconds as if untraced."""

    before: Sizes
    after: Sizes
    lead: float
    tail: float


def per_epoch(part: SliceParts, epoch: float) -> Sizes:
    """Each site's growth per epoch from one slice: a rate seen in both parts (per step or
    second) times the epoch's length (in the same unit), plus what one part gained beyond
    that rate (per epoch). Each row: [bytes, objects, bytes of the jump]."""
    out: Sizes = {}
    lead, tail = max(part.lead, 1e-6), max(part.tail, 1e-6)
    for key in set(part.before) | set(part.after):
        row = []
        jump = 0
        for i in (0, 1):
            a, b = part.before.get(key, (0, 0))[i], part.after.get(key, (0, 0))[i]
            rate = _rate(a, lead, b, tail) if a > 0 and b > 0 else 0.0
            gained = max(0.0, a + b - rate * (lead + tail))
            row.append(int(rate * epoch + gained))
            jump = jump or int(gained)
        if row[0] > 0:
            out[key] = [*row, jump]
    return out


def _rate(before: float, lead: float, after: float, tail: float) -> float:
    """One per-step rate from the two parts': parts whose rates agree within `AGREE`
    measured one rate (over both: a loaded machine's noise halves); parts that differ more
    hold a jump besides it (an epoch's callback), and the lesser is the step's."""
    low, high = sorted((before / lead, after / tail))
    return (before + after) / (lead + tail) if high <= AGREE * low else low


def consistent(slices: list[Sizes], at: list[int] | None = None, rss_growth: int | None = None) -> Sizes:
    """The sites that grew in every slice, with their mean growth: what one slice caught
    in passing (a batch alive at a snapshot) is not in the others.

    An object rebuilt larger each epoch (`np.stack(self.history)` in a callback) is new in
    every slice at its whole size, the old one freed untraced: keras#4168's callback read
    "+22.9 MiB an epoch" where it grew 4.6 MiB an epoch, twice the RSS's rise. A site that
    claims more than REBUILT times what the RSS rose an epoch, made in one go, and is larger
    in the later slice (`at`: their boundaries), grew by the difference over the epochs
    between. A per-step rate (a slice timed in seconds on a loaded machine reads one 2-4
    times off) is left alone."""
    if not slices:
        return {}
    keys = set.intersection(*(set(s) for s in slices))
    n = len(slices)
    out = {k: [sum(s[k][i] for s in slices) // n for i in range(3)] for k in keys}
    apart = at[-1] - at[0] if at is not None and len(at) == n >= 2 else 0
    if apart > 0 and rss_growth is not None and rss_growth > 0:
        first, last = slices[0], slices[-1]
        for k, row in out.items():
            if _made_at_once(row, rss_growth) and last[k][0] > first[k][0]:
                out[k] = [(last[k][0] - first[k][0]) // apart, max(0, last[k][1] - first[k][1]) // apart, 0]
    return out


def _made_at_once(row: list[int], rss_growth: int) -> bool:
    """Made in one go (no per-step rate: a callback's), and more than the RSS rises."""
    size, _count, *jump = row
    return size > REBUILT * rss_growth and bool(jump) and jump[0] >= JUMP_SHARE * size


def grown_sites(sizes: Sizes, rss_growth: int | None = None) -> list[dict[str, Any]]:
    """The sites that grew most, per epoch, largest first, as `where` entries. One that
    still claims more than REBUILT times the RSS's rise an epoch (one slice could not tell
    how much it grows) is `made_anew`: what it made, not what it kept."""
    import linecache

    rows = sorted(sizes.items(), key=lambda kv: kv[1][0], reverse=True)
    rss = rss_growth if rss_growth is not None and rss_growth > 0 else None
    return [
        {
            "site": f"{short_path(filename)}:{lineno}",
            "function": function_at(filename, lineno),
            "line": linecache.getline(filename, lineno).strip()[:200],
            "bytes_per_epoch": row[0],
            "count_per_epoch": row[1],
            "user_code": is_user(filename),
            **({"made_anew": True} if rss is not None and _made_at_once(row, rss) else {}),
        }
        for (filename, lineno), row in rows[: NAMED * 4]
    ]


def traced_growth(sites: list[dict[str, Any]]) -> int:
    return sum(int(s["bytes_per_epoch"]) for s in sites)


@functools.lru_cache(maxsize=256)
def _functions(filename: str) -> tuple[tuple[int, int, str], ...]:
    import ast
    import linecache

    try:
        source = "".join(linecache.getlines(filename))
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return ()
    out: list[tuple[int, int, str]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    out.append((child.lineno, child.end_lineno or child.lineno, name))
                walk(child, name + ".")
            else:
                walk(child, prefix)

    walk(tree, "")
    return tuple(out)


def function_at(filename: str, lineno: int) -> str:
    """The qualified name of the innermost function holding a line (`<module>` if none):
    tracemalloc's frames carry a file and a line, not a function."""
    best = "<module>"
    span = None
    for first, last, name in _functions(filename):
        if first <= lineno <= last and (span is None or last - first < span):
            best, span = name, last - first
    return best


def named_sites(sites: list[dict[str, Any]], traced: int, in_python: bool) -> list[dict[str, Any]]:
    """The sites the summary names, the answer first: those that hold a material part of
    what grew (the largest always), the user's own code ahead of libraries'; for native
    growth, the user's code that grew in number: it may hold it (tensors, buffers). Every
    view (the report's summary, the live line's first place) names the same site."""
    if not in_python:
        counted = [s for s in sites if s["user_code"] and s["count_per_epoch"] >= COUNTED]
        return sorted(counted, key=lambda s: s["count_per_epoch"], reverse=True)[:NAMED]
    material = [s for i, s in enumerate(sites) if i == 0 or s["bytes_per_epoch"] >= 0.05 * traced]
    # What is kept before what is made anew from it (keras#4168: the list of predictions, then
    # the array stacked from it every epoch).
    return sorted(material, key=lambda s: (not s["user_code"], bool(s.get("made_anew"))))[:NAMED]


def fed_by(sites: list[dict[str, Any]], producer: str | None) -> list[dict[str, Any]]:
    """The sites inside the input producer's function (a PyDataset's `__getitem__`, a
    generator): code tf.data's threads run ahead of the steps, whose allocations a slice
    around an epoch boundary sees only in part (the producer is done with an epoch's
    batches before its last steps, and refills its buffer after the next one's first)."""
    return [s for s in sites if producer and s["function"] == producer]


def memory_summary(
    where: list[dict[str, Any]],
    traced: int,
    rss: int | None,
    in_python: bool,
    producer: str | None = None,
    over: str = "",
) -> str:
    """One sentence: the sites that grew, or that the growth is not in Python objects.
    `producer`: the input producer's function, whose sites say only part of what it grew.
    `over`: the epochs the RSS's rise is of ("epochs 5-7"): the finding's own figure may be
    of others (tensorflow#62198's XLA compiles: 52 MiB an epoch over epochs 1-6 beside "RSS
    grew 1.0 MiB an epoch", of the window's epochs 5-7, read as one contradiction)."""
    mib = 1 / MIB
    over = f" over {over}" if over else ""
    if not in_python:
        text = (
            f"RSS grew {(rss or 0) * mib:.1f} MiB an epoch{over} but traced Python allocations only "
            f"{traced * mib:.1f} MiB: the growth is not in Python objects (native memory: "
            "the framework's runtime, a C extension, the allocator)"
        )
        if where:
            w = where[0]
            text += (
                f"; Python objects that grew in number, which may hold it (tensors, buffers): "
                f"{w['site']} {w['function']} (+{w['count_per_epoch']} an epoch)"
            )
        if producer:
            text += (
                f"; the input producer {producer} runs on the input pipeline's threads, ahead of "
                "the steps, where the slices see few of its calls: it may hold it too"
            )
        return text
    if not where:
        return "no Python allocation site grew between the two snapshots"
    parts = [
        f"{w['site']} {w['function']} ({w['bytes_per_epoch'] * mib:.1f} MiB made anew each epoch, more than the "
        "RSS rises: not all of it is kept)"
        if w.get("made_anew")
        else f"{w['site']} {w['function']} (+{w['bytes_per_epoch'] * mib:.1f} MiB, +{w['count_per_epoch']} objects an epoch)"
        for w in where
    ]
    text = "the memory that grew was allocated at " + "; ".join(parts)
    if rss and rss > 0 and traced < PART_SHARE * rss and fed_by(where, producer):
        # keras#12100: a PyDataset keeping each batch grew 85 MiB an epoch, read as "0.4 MiB
        # traced: not in Python objects", then "16% ...: the rest is native memory".
        text += (
            f"; that is {traced / rss:.0%} of RSS's rise{over or ' over the same epochs'} ({rss * mib:.1f} MiB an "
            f"epoch), but {producer} makes the batches on the input pipeline's threads, ahead of "
            "the steps, and the slices around an epoch's end see few of its calls: look there first"
        )
    elif rss and rss > 0 and traced < PART_SHARE * rss:
        # Named alone, a site holding 0.3 of a 3 MiB rise an epoch read as the leak itself.
        text += (
            f"; that is {traced / rss:.0%} of RSS's rise{over or ' over the same epochs'} ({rss * mib:.1f} MiB an "
            "epoch): the rest is native memory (the framework's runtime, a C extension, the allocator)"
        )
    return text
