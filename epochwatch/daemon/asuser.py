"""Opening a user's file in one of the daemon's own directories with the user's rights.

The daemon's traces directory is its own (root's); the traces in it belong to their runs'
users, who can write them. Reading one (a restore's parent, a trace taken back at restart)
is done with the user's file-system credentials: the directory is opened with the
daemon's rights, then the file relative to it with the thread's fsuid and fsgid set to the
user's (Linux keeps them per thread, and a thread with fsuid other than 0 has none of
root's capabilities over files), `O_NOFOLLOW`, and only a regular file owned by the user
is returned. Nothing else in the process changes rights, even for that moment.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from epochwatch.daemon.safedirs import O_PATH


@contextlib.contextmanager
def fs_creds(uid: int, gid: int) -> Iterator[None]:
    """This thread's file-system uid and gid are the user's for the block (when root)."""
    if os.geteuid() != 0 or uid == 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.setfsgid(gid)
    libc.setfsuid(uid)
    try:
        yield
    finally:
        libc.setfsuid(0)
        libc.setfsgid(0)


def open_as(directory: Path, name: str, uid: int, gid: int, flags: int) -> int:
    """An fd on `directory/name` opened with `flags` (and O_NOFOLLOW) as (uid, gid), of a file
    owned by `uid` when the daemon is root (PermissionError otherwise). The caller closes it."""
    top = os.open(directory, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with fs_creds(uid, gid):
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)
    finally:
        os.close(top)
    if os.geteuid() == 0 and os.fstat(fd).st_uid != uid:
        # The daemon's own supplementary groups stay with it "as the user" (a group-0
        # member could write there): the owner is the barrier.
        os.close(fd)
        raise PermissionError(f"{name} is not owned by uid {uid}")
    return fd


def open_users_file(directory: Path, name: str, uid: int, gid: int) -> int | None:
    """An O_RDONLY fd on `directory/name` opened as (uid, gid), a regular file owned by `uid`
    (when the daemon is root); None otherwise. The caller closes it."""
    try:
        fd = open_as(directory, name, uid, gid, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd
