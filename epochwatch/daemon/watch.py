"""Which directories a run may have watched, in two halves that never share rights.

The daemon (root) looks only at the request: a string, an absolute path no longer than
PATH_MAX, a known role (`refuse_request`): no file-system access at all. Everything that
touches the path (resolving it, whether it is a directory, whether it can be read) runs in
the run's own per-uid worker (userworker.py), with the run's uid, gid and groups and no
capabilities: `refuse_root` there asks the kernel, by doing it, instead of emulating
permission bits as root. So a directory a user cannot read is never walked for them, below
the root as well as at it: the walk itself runs with their rights.

Roots under /proc, /sys and /dev are refused after resolving (as the user), so
`/proc/<pid>/cwd` or a symlink to /sys cannot make anyone walk kernel trees or another
process's working directory.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from epochwatch.trace.schema import ROLES

MISSING = "does not exist yet"
# Kernel trees: nothing to measure there, and /proc/<pid>/ links lead into other processes.
FORBIDDEN_TREES = ("/proc", "/sys", "/dev")
PATH_MAX = 4096


def refuse_request(raw: Any, role: Any) -> str | None:
    """Why a `watch` record cannot be asked for at all (daemon side, no file-system access)."""
    if not isinstance(raw, str) or not raw or "\0" in raw:
        return "not a path"
    if len(raw.encode(errors="surrogateescape")) > PATH_MAX:
        return f"a path longer than {PATH_MAX} bytes"
    if not os.path.isabs(raw):
        return "not an absolute path"
    if role is not None and not isinstance(role, str):
        return f"not a role (expected one of {', '.join(sorted(ROLES))})"
    # normpath keeps a leading "//" (POSIX leaves its meaning to the system; Linux reads it
    # as "/"), so "//proc/self/cwd" had passed as if it were not under /proc.
    return _forbidden("/" + os.path.normpath(raw).lstrip("/"))


def _forbidden(path: str) -> str | None:
    for tree in FORBIDDEN_TREES:
        if path == tree or path.startswith(tree + "/"):
            return f"under {tree}, which is never watched"
    return None


def refuse_root(raw: str) -> tuple[str | None, str]:
    """(why not, resolved path) for this process (the run's worker, with the run's rights).

    A path that does not exist yet gives MISSING and its path as it would resolve: the
    watcher activates it once it appears, and checks it again then (`still_allowed`).
    """
    why = refuse_request(raw, None)
    if why is not None:
        return why, raw
    try:
        os.lstat(raw)
    except FileNotFoundError:
        real = os.path.realpath(raw)
        return _forbidden(real) or MISSING, real
    except OSError as exc:  # EACCES on the way: this uid cannot reach it (nor learn whether it exists)
        return f"uid {os.getuid()} cannot reach it ({exc.strerror or exc})", raw
    try:
        real = os.path.realpath(raw, strict=True)
    except OSError as exc:
        return f"cannot resolve ({exc.strerror or exc})", raw
    why = _forbidden(real)
    if why is not None:
        return why, real
    try:
        st = os.stat(real)
    except OSError as exc:
        return f"cannot stat ({exc.strerror or exc})", real
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory", real
    if not os.access(real, os.R_OK | os.X_OK):
        return f"uid {os.getuid()} cannot read it", real
    return None, real


def still_allowed(path: str) -> str | None:
    """At a root's (re)activation in the worker: why it may no longer be watched, or None."""
    why, real = refuse_root(path)
    if why is None and real != path:
        why = "it became a symlink"
    return why
