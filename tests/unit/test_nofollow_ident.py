"""A watched directory deleted and made again is another directory, even on its old inode."""

from __future__ import annotations

import os
from pathlib import Path

from epochwatch.samplers.nofollow import ident


def test_a_directory_made_again_private_in_place_is_not_the_same(tmp_path: Path) -> None:
    """tmpfs gives a directory made right after one was deleted the same inode: a root-owned
    0700 directory in a watched one's place read as the same and was never checked again
    (test_daemon_hardening, 1 run in 3 under load). Owner and mode are part of who it is."""
    watched = tmp_path / "private"
    watched.mkdir(mode=0o755)
    before = ident(str(watched))
    assert before is not None
    inode = os.stat(watched).st_ino
    for _ in range(64):  # until the inode comes back, as it did in the daemon test
        watched.rmdir()
        watched.mkdir(mode=0o700)
        if os.stat(watched).st_ino == inode:
            break
    assert ident(str(watched)) != before
    watched.chmod(0o755)
    again = ident(str(watched))
    watched.chmod(0o700)  # the same directory closed to its user in place
    assert ident(str(watched)) != again
