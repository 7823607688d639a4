"""Where the daemon keeps things on disk: trace files and the small per-run state files.

The daemon alone chooses file names: a client's wished-for run id goes through
`safe_run_id` and gets a numeric suffix when taken, and files are created with
O_EXCL | O_NOFOLLOW, so no client input can name, replace or climb to another path.

Layout under the state directory:
  traces/<run_id>.jsonl     the trace (mode `trace_mode`, owned by the run's uid when root)
  sessions/<run_id>.json    resume state of a run still going (mode 0600): token hash,
                            uid, pid and the pid's start time; removed when the run ends.
A restarted daemon reads sessions/ to take runs back: each state holds a `mark` (the
run's counters at a size of its trace), so only a bounded tail is read (takeback.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from epochwatch.daemon.asuser import open_as
from epochwatch.daemon.quota import RunMeter
from epochwatch.daemon.safedirs import open_dir, subdir
from epochwatch.trace.schema import safe_run_id
from epochwatch.trace.writer import TraceWriter, dumps_line

# Names tried in order (`name`, `name-2` ... `name-9`) before a random suffix: a name used
# thousands of times costs a few tries, never a loop over every trace it already has.
NUMBERED_NAMES = 9

log = logging.getLogger("epochwatch.daemon")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def prepare_dirs(state_dir: Path) -> tuple[Path, Path]:
    """Create traces/ (0711: users open their own trace by name, cannot list others')
    and sessions/ (0700) in the state directory, all checked as safe (safedirs.py:
    UnsafeDirectory when another user could swap something in) and moded by fd."""
    traces, sessions = state_dir / "traces", state_dir / "sessions"
    top = open_dir(state_dir, 0o755)
    try:
        for path, mode in ((traces, 0o711), (sessions, 0o700)):
            os.close(subdir(top, path.name, mode, str(path)))
    finally:
        os.close(top)
    for path in (traces, sessions):
        _check_writable(path)
    return traces, sessions


def _check_writable(directory: Path) -> None:
    """Raise OSError unless this process can create files in `directory`.

    A daemon that listens but cannot write (a non-root daemon on root's state directory,
    a read-only mount) would accept every run and lose it: better not to start. A real
    create-and-remove, since permission bits do not tell about read-only mounts or ACLs.
    """
    probe = directory / f".write-test-{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.close(fd)
    os.unlink(probe)


class TraceFile(TraceWriter):
    """One trace the daemon keeps: a TraceWriter on a file only the daemon names."""

    def __init__(self, path: Path, fd: int) -> None:
        super().__init__(path, fd=fd)
        self.meter: RunMeter | None = None  # the registry's byte limits (quota.py)

    def offset(self) -> int:
        """Where the next record starts (the end of the file)."""
        assert self._fd is not None
        return os.fstat(self._fd).st_size

    def truncate(self, size: int) -> None:
        """Cut the trace back to `size` bytes (a handover: records that are the hook's now)."""
        assert self._fd is not None
        os.ftruncate(self._fd, size)

    def write(self, record: dict[str, Any], *, essential: bool = False) -> None:
        self.write_line(dumps_line(record), essential=essential)

    def write_line(self, line: bytes, *, essential: bool = False) -> None:
        """Metered: a write over a byte limit raises TraceLimit before a byte is written."""
        if self.meter is not None:
            self.meter.check(len(line), essential=essential)
        super().write_line(line)
        if self.meter is not None:
            self.meter.spent(len(line))

    @classmethod
    def create(cls, traces: Path, wanted: str, *, uid: int, mode: int) -> TraceFile:
        """A new trace for `wanted`, made unique: `name`, `name-2` ... `name-9`, then
        `name-<random hex>`: at most NUMBERED_NAMES + 8 tries, on the event loop."""
        base = safe_run_id(wanted or "run")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for n in range(1, NUMBERED_NAMES + 9):
            suffix = str(n) if n <= NUMBERED_NAMES else secrets.token_hex(4)
            run_id = base if n == 1 else f"{base[:120]}-{suffix}"
            path = traces / f"{run_id}.jsonl"
            try:
                fd = os.open(path, flags, mode)
            except FileExistsError:
                continue
            cls._own(fd, uid, mode)
            return cls(path, fd)
        raise OSError(f"no free trace name for {base!r}")

    @classmethod
    def reopen(cls, path: Path, uid: int | None = None, gid: int | None = None) -> TraceFile:
        """The trace again (a restart), opened with its user's rights when (uid, gid) are
        given: it is their file, and root does not open what a user can write (asuser.py)."""
        flags = os.O_WRONLY | os.O_APPEND
        if uid is None or gid is None:
            return cls(path, os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC))
        return cls(path, open_as(path.parent, path.name, uid, gid, flags))

    @staticmethod
    def _own(fd: int, uid: int, mode: int) -> None:
        with contextlib.suppress(OSError):
            os.fchmod(fd, mode)  # the umask must not narrow what the config asked for
        if os.geteuid() == 0 and uid != 0:
            with contextlib.suppress(OSError):
                os.fchown(fd, uid, -1)

    @property
    def run_id(self) -> str:
        return self.path.name[: -len(".jsonl")]


@dataclass
class SessionState:
    """What a restarted daemon needs to take a run back and check who resumes it."""

    run_id: str
    token_sha256: str
    uid: int
    gid: int
    pid: int
    create_time: float
    started: float
    script: str = ""
    # the run's counters at a size of its trace (takeback.mark_of), so a restart reads only
    # what came after it; None until the first mark
    mark: dict[str, Any] | None = None

    def save(self, sessions: Path, *, durable: bool = True) -> None:
        """Write the state (atomically; `durable`: fsync'ed, for the first save, not marks)."""
        path = sessions / f"{self.run_id}.json"
        tmp = sessions / f".{self.run_id}.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, orjson.dumps(asdict(self)))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    @staticmethod
    def remove(sessions: Path, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (sessions / f"{run_id}.json").unlink()

    @classmethod
    def load_all(cls, sessions: Path) -> tuple[list[SessionState], list[str]]:
        """Every saved state, and one line for each file that could not be used."""
        states: list[SessionState] = []
        problems: list[str] = []
        for path in sorted(sessions.glob("*.json")):
            try:
                data = orjson.loads(path.read_bytes())
                state = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
                if state.run_id != path.stem:
                    raise ValueError("run id does not match the file name")
                states.append(state)
            except (OSError, ValueError, TypeError) as exc:
                problems.append(f"{path}: {exc}")
        return states, problems


class StateWriter:
    """Saves and removes the runs' state files on a thread of its own, in the order asked:
    an fsync, or a sessions/ on a slow disk, never holds the event loop that every client
    waits on (a FIFO planted where a state is written had stopped the daemon). A state is
    copied when asked, so the loop may change it while it is written."""

    def __init__(self, sessions: Path) -> None:
        self.dir = sessions
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epochwatch-state")

    def save(self, state: SessionState, *, durable: bool = True) -> None:
        with contextlib.suppress(RuntimeError):  # closed: the daemon is exiting
            self._pool.submit(self._save, dataclasses.replace(state), durable)

    def remove(self, run_id: str) -> None:
        with contextlib.suppress(RuntimeError):
            self._pool.submit(SessionState.remove, self.dir, run_id)

    def _save(self, state: SessionState, durable: bool) -> None:
        try:
            state.save(self.dir, durable=durable)
        except Exception as exc:  # on the writer's thread: said, never lost in its future
            log.warning(
                "run %s: cannot save its resume state (%s: %s)", state.run_id, type(exc).__name__, exc
            )

    def close(self) -> None:
        """Write what was asked, then stop (the daemon's exit)."""
        self._pool.shutdown(wait=True)
