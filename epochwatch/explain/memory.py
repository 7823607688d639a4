"""A bounded tracemalloc window: which Python allocation sites grew between two epoch ends.

`start()` turns tracemalloc on (a small frame depth: enough to walk from a library's
allocation up to the user's line that asked for it); the controller takes a snapshot at
the next epoch end and another one epoch later, then stops tracing. What grew between the
two snapshots, grouped by the innermost frame of the user's code in each traceback (else
the innermost frame), is the answer in bytes and objects per epoch. When RSS grew and
traced Python allocations did not, that is an answer too: the growth is in native memory
(the framework's runtime, C extensions, the allocator), not in Python objects.

tracemalloc is never touched when the script traces memory itself.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tracemalloc

from epochwatch.explain.frames import hook_inside, is_user, short_path

DEPTH = 8  # frames per allocation: tracemalloc costs grow with it (bench/explain.py)
NAMED = 3
MIB = 1 << 20
COUNTED = 16  # objects an epoch: a site that grows this much in number may hold native memory
NATIVE_SHARE = 0.25  # traced growth under this share of RSS growth: "not in Python objects"


class MemoryWindow:
    def __init__(self, depth: int = DEPTH) -> None:
        import tracemalloc  # here, not with the hook: only a window needs it

        self.owned = not tracemalloc.is_tracing()
        if self.owned:
            tracemalloc.start(depth)
        self.first: tracemalloc.Snapshot | None = None

    def snapshot(self) -> tracemalloc.Snapshot:
        import tracemalloc

        return tracemalloc.take_snapshot()

    def stop(self) -> None:
        import tracemalloc

        if self.owned and tracemalloc.is_tracing():
            tracemalloc.stop()


def grown_sites(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, epochs: int
) -> list[dict[str, Any]]:
    """The allocation sites that grew most, per epoch, largest first."""
    sizes: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for diff in after.compare_to(before, "traceback"):
        if diff.size_diff <= 0:
            continue
        frames = list(diff.traceback)  # oldest first (Python 3.7+)
        if hook_inside(tuple((f.filename, f.lineno, "") for f in frames)):
            continue  # the hook's own (its analysis keeps the run's series)
        anchor = next((f for f in reversed(frames) if is_user(f.filename)), frames[-1] if frames else None)
        if anchor is None:
            continue
        key = (anchor.filename, anchor.lineno)
        sizes[key][0] += diff.size_diff
        sizes[key][1] += diff.count_diff
    import linecache

    per = max(1, epochs)
    rows = sorted(sizes.items(), key=lambda kv: kv[1][0], reverse=True)
    return [
        {
            "site": f"{short_path(filename)}:{lineno}",
            "function": function_at(filename, lineno),
            "line": linecache.getline(filename, lineno).strip()[:200],
            "bytes_per_epoch": size // per,
            "count_per_epoch": count // per,
            "user_code": is_user(filename),
        }
        for (filename, lineno), (size, count) in rows[: NAMED * 4]
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
    """The sites that hold a material part of what grew (the first always); for native
    growth, those that grew most in number: they may hold it (tensors, buffers)."""
    if not in_python:
        return sorted(sites, key=lambda s: s["count_per_epoch"], reverse=True)[:NAMED]
    return [s for i, s in enumerate(sites) if i == 0 or s["bytes_per_epoch"] >= 0.05 * traced][:NAMED]


def memory_summary(where: list[dict[str, Any]], traced: int, rss: int | None, in_python: bool) -> str:
    """One sentence: the sites that grew, or that the growth is not in Python objects."""
    mib = 1 / MIB
    if not in_python:
        text = (
            f"RSS grew {(rss or 0) * mib:.1f} MiB an epoch but traced Python allocations only "
            f"{traced * mib:.1f} MiB: the growth is not in Python objects (native memory: "
            "the framework's runtime, a C extension, the allocator)"
        )
        counted = [w for w in where if w["count_per_epoch"] >= COUNTED and w["user_code"]]
        if counted:
            w = counted[0]
            text += (
                f"; Python objects that grew in number, which may hold it (tensors, buffers): "
                f"{w['site']} {w['function']} (+{w['count_per_epoch']} an epoch)"
            )
        return text
    if not where:
        return "no Python allocation site grew between the two snapshots"
    parts = [
        f"{w['site']} {w['function']} (+{w['bytes_per_epoch'] * mib:.1f} MiB, +{w['count_per_epoch']} objects an epoch)"
        for w in where
    ]
    return "the memory that grew was allocated at " + "; ".join(parts)
