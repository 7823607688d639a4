"""Who may ask the daemon (root) to watch a directory: checked with the asker's uid."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from epochwatch.daemon.watch import MISSING, refuse_watch

NOBODY = 65534


def test_paths_that_are_never_allowed(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert refuse_watch("relative", 0, 0)[0] == "not an absolute path"
    assert refuse_watch(None, 0, 0)[0] == "not a path"
    assert refuse_watch("/a\0b", 0, 0)[0] == "not a path"
    assert refuse_watch(str(tmp_path / "file"), 0, 0)[0] == "not a directory"
    assert refuse_watch(str(tmp_path / "later"), 0, 0)[0] == MISSING


def test_symlinks_are_resolved_before_checking(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    why, resolved = refuse_watch(str(tmp_path / "link"), os.getuid(), os.getgid())
    assert why is None and resolved == str(real.resolve())


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make directories owned by others")
def test_another_users_private_directory_is_refused() -> None:
    tmp_path = Path(tempfile.mkdtemp(prefix="eww", dir="/tmp"))  # pytest's own tree is 0700
    os.chmod(tmp_path, 0o755)
    try:
        _check_private(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _check_private(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    inside = private / "ckpt"
    inside.mkdir(mode=0o777)
    public = tmp_path / "public"
    public.mkdir(mode=0o755)
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    os.chown(mine, NOBODY, NOBODY)
    assert "cannot read it" in (refuse_watch(str(private), NOBODY, NOBODY)[0] or "")
    assert "cannot reach it" in (refuse_watch(str(inside), NOBODY, NOBODY)[0] or "")
    assert refuse_watch(str(public), NOBODY, NOBODY)[0] is None
    assert refuse_watch(str(mine), NOBODY, NOBODY)[0] is None
    assert refuse_watch(str(private), 0, 0)[0] is None
