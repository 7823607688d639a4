"""Who may have a directory watched: the daemon looks only at the request; the checks that
touch the path run in the run's worker, with the run's own rights (here: a forked child
that became uid 65534)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from epochwatch.daemon.frames import FrameError, FrameReader, encode
from epochwatch.daemon.watch import MISSING, PATH_MAX, refuse_request, refuse_root

NOBODY = 65534


def test_the_daemon_refuses_requests_without_touching_the_path() -> None:
    assert refuse_request(None, "user") == "not a path"
    assert refuse_request("/a\0b", "user") == "not a path"
    assert refuse_request("relative", "user") == "not an absolute path"
    assert refuse_request("/x" * PATH_MAX, "user") == f"a path longer than {PATH_MAX} bytes"
    assert (refuse_request("/tmp/ckpt", ["checkpoint"]) or "").startswith("not a role")
    kernel_trees = ("/proc", "/proc/1/cwd", "/sys/kernel", "/dev/shm", "/proc/../proc/self")
    # normpath keeps a leading "//": "//proc/self/cwd" had passed (audit13)
    for kernel in (*kernel_trees, "//proc", "///sys/kernel", "//proc/self/cwd", "//dev/../proc"):
        assert "never watched" in (refuse_request(kernel, "user") or ""), kernel
    assert refuse_request("/tmp/ckpt", "checkpoint") is None
    assert refuse_request("/tmp/ckpt", "made-up") is None  # an unknown role is watched as "user"


def test_symlinks_are_resolved_and_missing_directories_wait(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "file").write_text("x")
    (tmp_path / "sys").symlink_to("/sys/kernel")
    assert refuse_root(str(tmp_path / "link")) == (None, str(real.resolve()))
    assert refuse_root(str(tmp_path / "file"))[0] == "not a directory"
    assert refuse_root(str(tmp_path / "later"))[0] == MISSING
    assert "never watched" in (refuse_root(str(tmp_path / "sys"))[0] or "")


def _as_nobody(fn: Callable[[], Any]) -> Any:
    """`fn()` in a forked child that is uid/gid 65534 with no groups; its result back."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            os.write(w, orjson.dumps(fn()))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return orjson.loads(data)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make directories owned by others")
def test_as_another_user_the_kernel_decides() -> None:
    base = Path(tempfile.mkdtemp(prefix="eww", dir="/tmp"))  # pytest's own tree is 0700
    os.chmod(base, 0o755)
    try:
        private = base / "private"
        private.mkdir(mode=0o700)
        inside = private / "ckpt"
        inside.mkdir(mode=0o777)
        public = base / "public"
        public.mkdir(mode=0o755)
        mine = base / "mine"
        mine.mkdir(mode=0o700)
        os.chown(mine, NOBODY, NOBODY)
        got = _as_nobody(lambda: [refuse_root(str(p))[0] for p in (private, inside, public, mine)])
        assert "cannot read it" in got[0]
        assert f"uid {NOBODY} cannot reach it" in got[1]  # no search permission on private/
        assert got[2:] == [None, None]
        assert refuse_root(str(private))[0] is None  # root may
    finally:
        shutil.rmtree(base)


def test_frames_are_bounded_and_must_be_objects() -> None:
    reader = FrameReader(limit=64)
    frame = encode({"op": "totals"})
    assert reader.feed(frame[:3]) == [] and reader.feed(frame[3:] + frame) == [{"op": "totals"}] * 2
    with pytest.raises(FrameError):
        FrameReader(limit=64).feed(b"\x00\x00\x01\x00")  # announces 256 bytes: refused before read
    with pytest.raises(FrameError):
        FrameReader().feed(b"\x00\x00\x00\x03{1,")  # not JSON
    with pytest.raises(FrameError):
        FrameReader().feed(b"\x00\x00\x00\x03[1]")
