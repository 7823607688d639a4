"""The per-uid worker: the part of the daemon that touches users' paths, with their rights.

Forked by the zygote (workers.py), it drops to the run's uid, gid and supplementary
groups (setgroups, setresgid, setresuid: real, effective and saved, so nothing is left
to go back to), which also empties its capability sets; `no_new_privs` keeps it so
across anything it could exec. It then serves one socket to the daemon with framed
messages (frames.py):

    daemon -> worker                          worker -> daemon
    {"op": "watch", "owner", "path", "role"}  {"op": "watch", "owner", "path", "real", "why",
                                                "pending": it does not exist yet}
    {"op": "forget", "owner"}                 -
    {"op": "totals"}                          {"op": "totals", "dirs": {owner: {path: entry}},
                                                "lost": [[owner, path, why], ...]}

It holds one DirWatcher for all the uid's runs (each run an owner). A root that comes back
after it was deleted is checked again here (`still_allowed`), as the user. The worker ends
when the daemon closes its socket (and with the zygote, by PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import threading
from collections.abc import Hashable, Iterable
from typing import Any

from epochwatch.daemon.frames import FrameReader, encode
from epochwatch.daemon.watch import MISSING, refuse_root, still_allowed

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
MAX_LOST = 256
# Heap a worker may grow by past what it was forked with (its size map): over it, the
# worker fails and ends, its user's watches with it, never the daemon.
WORKER_DATA_BYTES = 256 << 20


def _prctl(option: int, arg: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def drop_to(uid: int, gid: int, groups: list[int]) -> None:
    """Become (uid, gid, groups) for good; raises unless root cannot be had back."""
    if os.geteuid() == 0 and uid != 0:
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        try:
            os.setresuid(0, 0, 0)
        except PermissionError:
            pass
        else:
            raise OSError("could not drop root")
    _prctl(_PR_SET_NO_NEW_PRIVS, 1)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # a credential change cleared the one from before


def _limit_memory() -> None:
    """RLIMIT_DATA at what the worker holds now plus WORKER_DATA_BYTES."""
    import resource

    try:
        with open("/proc/self/status") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("VmData:"))
        limit = kib * 1024 + WORKER_DATA_BYTES
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (OSError, ValueError, StopIteration):
        pass


def groups_of(uid: int, gid: int) -> list[int]:
    """The uid's groups (primary from the connection, supplementary from the user database)."""
    groups = {gid}
    try:
        import pwd

        name = pwd.getpwuid(uid).pw_name
        groups.update(os.getgrouplist(name, gid))
    except (KeyError, OSError, ImportError):
        pass
    return sorted(groups)


def worker_main(fd: int, uid: int, gid: int) -> None:
    """The forked child: close what it inherited, drop, serve. Never returns.

    It works in "/", not the daemon's directory: a path through /proc/self/cwd (or a relative
    one) must never resolve to where the daemon happens to run."""
    code = 0
    try:
        os.chdir("/")
        os.closerange(3, fd)
        os.closerange(fd + 1, 65536)
        # What the watcher says would reach the daemon's log unescaped (paths are the
        # user's); the daemon logs what it is told, escaped.
        devnull = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(devnull, std)
        os.close(devnull)
        if os.getpriority(os.PRIO_PROCESS, 0) < 0:  # the daemon's Nice=-5: not for a user's work
            with contextlib.suppress(OSError):  # a unit without setpriority in its filter
                os.setpriority(os.PRIO_PROCESS, 0, 0)
        drop_to(uid, gid, groups_of(uid, gid))
        _limit_memory()
        with socket.socket(fileno=fd) as sock:
            UserWorker(sock).serve()
    except BaseException:
        code = 1
    finally:
        os._exit(code)


class UserWorker:
    """Serves the daemon's requests for one uid (see the module docstring)."""

    def __init__(self, sock: socket.socket) -> None:
        from epochwatch.samplers.dirwatch import DirWatcher

        self.sock = sock
        self._lock = threading.Lock()
        self._lost: list[list[Any]] = []
        self._owned: dict[Hashable, set[str]] = {}  # owner -> resolved roots
        self.watcher = DirWatcher(check=self._check)

    def serve(self) -> None:
        reader = FrameReader()
        try:
            while data := self.sock.recv(65536):
                for msg in reader.feed(data):
                    reply = self.handle(msg)
                    if reply is not None:
                        self.sock.sendall(encode(reply))
        finally:
            self.watcher.close()

    def handle(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        op, owner = msg.get("op"), msg.get("owner")
        if op == "watch":
            return self._watch(owner, msg.get("path"), msg.get("role"))
        if op == "forget":
            for path in self._owned.pop(owner, set()):
                self.watcher.unwatch(path, owner=owner)
        elif op == "totals":
            return self._totals()
        return None

    def _watch(self, owner: Any, path: Any, role: Any) -> dict[str, Any]:
        reply: dict[str, Any] = {"op": "watch", "owner": owner, "path": path}
        why, real = refuse_root(str(path))
        reply["pending"] = why == MISSING
        if why is None or why == MISSING:
            try:
                ok = self.watcher.watch(real, str(role), owner=owner)
            except Exception as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"
            if ok:
                self._owned.setdefault(owner, set()).add(real)
                why = None
            else:
                why = why if why not in (None, MISSING) else "the watcher refused it"
        reply.update(real=real, why=why)
        return reply

    def _totals(self) -> dict[str, Any]:
        dirs = {
            owner: _with_free(self.watcher.totals(paths)) for owner, paths in self._owned.items() if paths
        }
        with self._lock:
            lost, self._lost = self._lost, []
        for owner, path, _ in lost:
            self._owned.get(owner, set()).discard(path)
        return {"op": "totals", "dirs": dirs, "lost": lost}

    def _check(self, path: str, owners: frozenset[Hashable]) -> Iterable[Hashable]:
        """On the watcher's thread, before a root is (re)activated: all its owners are this
        uid's runs, so one check, as this uid, decides for all."""
        why = still_allowed(path)
        if why is None:
            return owners
        with self._lock:
            for owner in owners:
                if len(self._lost) < MAX_LOST:
                    self._lost.append([owner, path, why])
        return ()


def _with_free(totals: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each root's totals with the free bytes of its file system, as this user sees them
    (f_bavail): the daemon's disk_growth evidence, measured here so root never stats it."""
    for path, entry in totals.items():
        try:
            st = os.statvfs(path)
        except OSError:
            continue
        entry["free_bytes"] = st.f_bavail * st.f_frsize
    return totals


def zygote_main(sock: socket.socket) -> None:
    """The zygote: forked from the daemon before it starts a thread; forks a worker for each
    (uid, gid) and socket the daemon sends it. Never returns."""
    code = 0
    try:
        _preload()
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped by the kernel
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the daemon
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        while True:
            msg, fds, _, _ = socket.recv_fds(sock, 65536, 1)
            if not msg:
                return
            import orjson

            spec = orjson.loads(msg)
            pid = os.fork() if fds else -1
            if pid == 0:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                worker_main(fds[0], int(spec["uid"]), int(spec["gid"]))
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            sock.send(str(pid).encode())
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _preload() -> None:
    """Import, while root, what a worker imports: once it is a user, the interpreter's own
    files may be out of its reach (here they are under /root, 0700)."""
    import resource  # noqa: F401

    import epochwatch.samplers.dirwatch  # noqa: F401

    try:
        import watchdog.events
        import watchdog.observers  # noqa: F401
    except Exception:  # no watchdog: the workers poll, as the hook would
        pass
