"""An op's own time from a profiler's nested events, for both profilers' captures
(tf_profile.py, torch_profile.py): an event that holds others on its thread (a function's
call op, a module's forward) counts only what they did not, as the profilers' own "self
time" does, so the ops that grew are the ones that did the work."""

from __future__ import annotations

from collections import Counter


def own_times(rows: list[tuple[int, int, int, str]]) -> Counter[str]:
    """Each name's own time from (thread or line, start, duration, name) rows."""
    own: Counter[str] = Counter()
    stack: list[tuple[int, int, str]] = []  # (thread, end, name) enclosing the current one
    for thread, start, duration, name in sorted(rows, key=lambda r: (r[0], r[1], -r[2])):
        while stack and (stack[-1][0] != thread or stack[-1][1] <= start):
            stack.pop()
        own[name] += duration
        if stack:
            own[stack[-1][2]] -= duration
        stack.append((thread, start + duration, name))
    return own
