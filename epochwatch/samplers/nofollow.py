"""Reading directories without following a symlink anywhere on the way.

A watched root is the directory it was when it was asked for: a symlink swapped in for it,
or for any directory on the way to it, must never take the walk somewhere else (the
daemon's workers walk with the user's rights, and the hook with its own, but a count of a
different tree would still be wrong, and a shared one a way to learn about it). Watched roots are resolved when asked for, so a symlink
found on their path later was swapped in: these helpers open every component with
O_NOFOLLOW (O_PATH for ancestors, which need only search permission) and stat files
relative to the directory fd, so they fail (ELOOP, ENOTDIR) instead of following it.
"""

from __future__ import annotations

import os

_O_PATH = getattr(os, "O_PATH", os.O_RDONLY)
_O_DIR = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir(path: str, final: int = os.O_RDONLY) -> int:
    """An fd on the absolute directory `path`, opened one component at a time without
    following a symlink anywhere (O_NOFOLLOW on each; O_PATH for the ancestors, which
    need only search permission). Roots are watched resolved, so a symlink on the way
    means something was swapped in: OSError (ELOOP or ENOTDIR), never its target."""
    parts = [p for p in path.split(os.sep) if p]
    fd = os.open(os.sep, _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for n, part in enumerate(parts):
            flags = (final if n == len(parts) - 1 else _O_PATH) | _O_DIR
            nfd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nfd
        if not parts and final != _O_PATH:
            os.close(fd)
            fd = os.open(os.sep, final | os.O_DIRECTORY | os.O_CLOEXEC)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_dir(path: str) -> bool:
    """Whether `path` is a directory reached without a symlink."""
    try:
        os.close(open_dir(path, _O_PATH))
    except (OSError, ValueError):
        return False
    return True


def ident(path: str) -> tuple[int, ...] | None:
    """Who the directory at `path` is (reached without a symlink), else None: its device and
    inode, and its owner and mode. A directory deleted and made again can get the same inode
    (tmpfs reuses them at once), so a root-owned 0700 one in its place read as the same
    directory and was never checked again; owner and mode tell them apart (and a chmod of
    the watched directory itself gets it checked again too)."""
    try:
        fd = open_dir(path, _O_PATH)
    except (OSError, ValueError):
        return None
    try:
        st = os.fstat(fd)
        return st.st_dev, st.st_ino, st.st_uid, st.st_gid, st.st_mode
    finally:
        os.close(fd)


def list_dir(path: str) -> list[tuple[str, bool, os.stat_result | None]]:
    """(name, is a directory, lstat or None) for each entry, read through `open_dir`."""
    fd = open_dir(path)
    try:
        out: list[tuple[str, bool, os.stat_result | None]] = []
        with os.scandir(fd) as it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        out.append((entry.name, True, None))
                        continue
                    info: os.stat_result | None = entry.stat(follow_symlinks=False)
                except OSError:
                    info = None
                out.append((entry.name, False, info))
        return out
    finally:
        os.close(fd)


def lstat_at(directory: str, name: str) -> os.stat_result | None:
    """lstat of `name` in `directory`, the directory reached through `open_dir`."""
    try:
        fd = open_dir(directory, _O_PATH)
    except (OSError, ValueError):
        return None
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def count_dirs(path: str, limit: int) -> int:
    """Subdirectories under `path`, counting stops once past `limit` (cheap: d_type only)."""
    count = 0
    stack = [path]
    while stack:
        directory = stack.pop()
        try:
            fd = open_dir(directory)
        except (OSError, ValueError):
            continue
        try:
            with os.scandir(fd) as it:
                for entry in it:
                    try:
                        if not entry.is_dir(follow_symlinks=False):
                            continue
                    except OSError:
                        continue
                    count += 1
                    if count > limit:
                        return count
                    stack.append(os.path.join(directory, entry.name))
        except OSError:
            continue
        finally:
            os.close(fd)
    return count
