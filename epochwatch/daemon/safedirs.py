"""The daemon's own directories, checked the way sshd and systemd-tmpfiles check theirs.

The daemon runs as root and creates files in its state directory (traces, resume state)
and its socket directory. If another user can write to one of them, or to a directory
above it, they can swap in a symlink and have root create, chmod or write files
wherever it points. So before using a directory the daemon walks to it from `/`, one
component at a time with O_NOFOLLOW, and refuses to start unless every directory on
the way is owned by root or the daemon's own user and writable by nobody else, except
a sticky directory owned by root (like /tmp: others may create entries there but not
rename or remove the daemon's). The directory itself must be owned by root or the
daemon's user and not writable by group or others at all. Directories the daemon makes
itself are made relative to their parent's fd and given their mode with fchmod, never
by path, and only after they were opened and checked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

O_PATH = getattr(os, "O_PATH", os.O_RDONLY)
_NOFOLLOW_DIR = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeDirectory(Exception):
    """A directory the daemon will not use; the message is one line for the operator."""


def _check(st: os.stat_result, path: str, *, own: bool) -> None:
    """A directory on the way to the daemon's (a sticky one of root's may be writable by
    others), or with `own`, the daemon's own (writable by nobody else at all)."""
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectory(f"{path} is not a directory")
    if st.st_uid not in (0, os.geteuid()):
        raise UnsafeDirectory(f"{path} is owned by uid {st.st_uid}, not root or the daemon's user")
    mode = f"mode {stat.S_IMODE(st.st_mode):04o}"
    if own and st.st_mode & 0o022:
        raise UnsafeDirectory(
            f"{path} is writable by group or others ({mode}); only the daemon may write there"
        )
    if st.st_mode & 0o022 and not (st.st_mode & stat.S_ISVTX and st.st_uid == 0):
        raise UnsafeDirectory(
            f"{path} is writable by other users ({mode}) and not a sticky directory owned by root"
        )


def open_dir(path: str | Path, mode: int, *, sticky_ok: bool = False) -> int:
    """An fd (O_RDONLY) on directory `path`, made with `mode` when missing (its parents
    too), every directory from / checked; UnsafeDirectory (or OSError) otherwise.
    `sticky_ok`: `path` itself may be a sticky directory of root's, like /tmp (the socket's
    directory: others cannot rename or remove the daemon's socket there).

    Symlinks among the ancestors are resolved first (realpath: /var/run -> /run), and the
    resolved path is then walked without following any, so what is checked is what is used.
    """
    real = os.path.realpath(os.path.abspath(os.fspath(path)))
    parts = [p for p in real.split(os.sep) if p]
    fd = os.open(os.sep, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _check(os.fstat(fd), os.sep, own=False)
        walked = ""
        for n, part in enumerate(parts):
            walked += os.sep + part
            last = n == len(parts) - 1
            parent, fd = fd, -1
            fd = _step(parent, part, walked, mode if last else 0o755, last and not sticky_ok)  # closes parent
        if not parts:
            _check(os.fstat(fd), os.sep, own=True)
        return fd
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


def _step(parent: int, name: str, path: str, mode: int, last: bool) -> int:
    """Open `name` under the `parent` fd (making it if missing), check it, close `parent`."""
    made = False
    try:
        os.mkdir(name, mode, dir_fd=parent)
        made = True
    except FileExistsError:
        pass
    try:
        child = os.open(name, (os.O_RDONLY if last else O_PATH) | _NOFOLLOW_DIR, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a symlink, or a file where a directory belongs
            raise UnsafeDirectory(f"{path} is a symlink or not a directory") from None
        raise
    finally:
        os.close(parent)
    try:
        st = os.fstat(child)
        if made and last:
            os.fchmod(child, mode)  # the umask must not narrow it; on the fd, never the path
            st = os.fstat(child)
        _check(st, path, own=last)
    except BaseException:
        os.close(child)
        raise
    return child


def subdir(parent: int, name: str, mode: int, path: str) -> int:
    """An fd on `name` in the checked directory `parent`, made if missing, given exactly
    `mode` (fchmod), and checked like the directory itself."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, mode, dir_fd=parent)
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW_DIR, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeDirectory(f"{path} is a symlink or not a directory") from None
        raise
    try:
        st = os.fstat(fd)
        _check(st, path, own=True)
        if stat.S_IMODE(st.st_mode) != mode:
            with contextlib.suppress(PermissionError):  # root's, seen by a non-root daemon
                os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd
