"""Parent traces of a restore, as the daemon may read them: its own traces, its user's runs.

A restore record names its parent's trace (`parent.trace`), and the online analysis
follows it (analysis/restore/parents.py). In the daemon that record comes from a client,
and the daemon runs as root: following the path would let any user have root read any
file, and learn from the findings what it holds. So a daemon session's ParentCache only
takes the file name from the path, as a run id, and opens that run's trace inside the
daemon's traces directory: O_NOFOLLOW, relative to the directory's fd, a regular file,
owned by the same uid as the run asking (the daemon gives each trace to its run's uid),
and not over a size bound. Anything else is no parent.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from epochwatch.analysis.restore.parents import ParentCache
from epochwatch.analysis.run import Run
from epochwatch.trace.schema import safe_run_id

MAX_PARENT_BYTES = 256 << 20
_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)


class DaemonParents(ParentCache):
    def __init__(self, traces: Path, uid: int) -> None:
        super().__init__()
        self.traces = traces
        self.uid = uid

    def get(self, path: Path) -> Run | None:
        name = Path(path).name
        run_id = name[: -len(".jsonl")] if name.endswith(".jsonl") else ""
        if not run_id or safe_run_id(run_id) != run_id:
            return None
        key = f"daemon:{run_id}"
        if key not in self._loaded:
            if len(self._loaded) >= self.limit:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[key] = self._read(name)
        return self._loaded[key]

    def _read(self, name: str) -> Run | None:
        from epochwatch.analysis.restore.parents import read_parent

        try:
            top = os.open(self.traces, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=top)
        except OSError:
            return None
        finally:
            os.close(top)
        try:
            st = os.fstat(fd)
            owner_ok = st.st_uid == self.uid or (os.geteuid() != 0 and self.uid == os.geteuid())
            if not stat.S_ISREG(st.st_mode) or not owner_ok:
                return None
            run = read_parent(Path(f"/proc/self/fd/{fd}"), max_bytes=MAX_PARENT_BYTES)  # this very file
        finally:
            os.close(fd)
        if run is not None:
            run.path = self.traces / name
        return run
