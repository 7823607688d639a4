"""Where a run's records go: the daemon when one is listening, else a file of our own.

The hook only ever talks to a Sink. Both sinks take the same records and produce the
same trace; the script's behaviour never depends on which one it got.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from epochwatch import envvars
from epochwatch.guard import say
from epochwatch.trace.writer import TraceWriter


class Sink(Protocol):
    """Takes records in order. `write` must not block training for long; it may raise
    OSError (full disk), which the caller reports once."""

    description: str

    def write(self, record: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """Embedded mode: the hook writes `$EPOCHWATCH_DIR/<run_id>.jsonl` itself."""

    mode = "embedded"
    remote_detection = False

    def __init__(self, directory: str | os.PathLike[str], run_id: str) -> None:
        self.path = Path(directory) / f"{run_id}.jsonl"
        self._writer = TraceWriter(self.path, exclusive=True)  # never through a planted link or file
        self.trace_path = self.path.resolve()
        self.description = f"embedded trace {self.path}"

    def write(self, record: dict[str, Any]) -> None:
        self._writer.write(record)

    def close(self) -> None:
        self._writer.close()


def open_sink(run_id: str, environ: dict[str, str] | None = None) -> Sink:
    """The sink for a new run: the daemon's socket if it accepts, else an embedded file.

    No socket file at $EPOCHWATCH_SOCKET (the usual case without a daemon): embedded,
    silently. A socket there: a SocketSink, returned at once; it says hello on its own
    thread, and a daemon that refuses the run or does not answer makes it write the
    embedded trace instead, with one line on stderr saying why. Training never waits.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    directory = envvars.trace_dir(env)
    path = envvars.socket_path(env)
    if _is_socket(path):
        why = untrusted_socket(path)
        if why is not None:
            say(f"the daemon socket {path} is not trusted ({why}); writing the embedded trace")
            return FileSink(directory, run_id)
        try:
            from epochwatch.trace.socket_sink import DEFAULT_GRACE, SocketSink

            return SocketSink(
                path,
                run_id,
                directory,
                grace=_seconds(env.get(envvars.EPOCHWATCH_DAEMON_GRACE), DEFAULT_GRACE),
            )
        except Exception as exc:  # whatever goes wrong with the daemon, the run is still traced
            reason = (
                exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            )
            say(f"daemon at {path} not usable ({reason}); writing the embedded trace")
    return FileSink(directory, run_id)


def untrusted_socket(path: str) -> str | None:
    """Why the hook will not talk to the socket at `path`, or None.

    Whoever listens there learns the run's command line, working directory and
    environment summary, so the socket must belong to root (the system daemon) or to
    this user (their own daemon), in a directory that belongs to one of them and that
    nobody else may write to (unless sticky), so it cannot be swapped after this check.
    """
    me = os.geteuid()
    try:
        real = os.path.realpath(path)
        st = os.lstat(real)
        parent = os.stat(os.path.dirname(real))
    except OSError:
        return None  # not there: connecting will say so
    if st.st_uid not in (0, me):
        return f"it belongs to uid {st.st_uid}, neither root nor you"
    if parent.st_uid not in (0, me):
        return f"its directory belongs to uid {parent.st_uid}, neither root nor you"
    if parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX:
        return "its directory is writable by other users"
    return None


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _seconds(raw: str | None, default: float) -> float:
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value >= 0 else default
