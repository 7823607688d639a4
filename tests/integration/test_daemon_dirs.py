"""Issue 18, item 7: directories other users can write, and whose socket the hook trusts.

The root daemon refuses to start on a state or socket directory another user could swap
a symlink into (and never chmods by path), and a hook does not talk to a socket that
belongs to another user (a fake daemon would learn its argv and working directory).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.integration.daemon_harness import PY, DaemonProc, base_env, start_fake_run, wait_for_line
from tests.integration.other_user import NOBODY, shared_tmp

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make directories of other users")


def _start_fails(root: Path, state: Path, socket_dir: Path | None = None) -> str:
    """Run the daemon on `state`; it must exit 2 at once with one line, which is returned."""
    sock = (socket_dir or root / "sock") / "d.sock"
    cmd = [PY, "-m", "epochwatch", "daemon", "--socket", str(sock), "--state-dir", str(state)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=base_env(), timeout=60, check=False)
    assert out.returncode == 2, out.stderr + out.stdout
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def test_the_daemon_refuses_directories_other_users_can_write() -> None:
    with shared_tmp() as base:
        open_dir = base / "open"  # writable by everyone, not sticky
        open_dir.mkdir()
        os.chmod(open_dir, 0o777)
        assert "writable by other users" in _start_fails(base, open_dir / "state")

        theirs = base / "theirs"  # made by another user (who could fill it with symlinks)
        theirs.mkdir()
        os.chown(theirs, NOBODY, NOBODY)
        assert f"owned by uid {NOBODY}" in _start_fails(base, theirs)

        group = base / "group"
        group.mkdir()
        os.chmod(group, 0o775)
        assert "writable by group or others" in _start_fails(base, group)

        # a `traces` symlink planted in the state directory: refused, its target untouched
        state = base / "state"
        state.mkdir()
        target = base / "target"
        target.mkdir(mode=0o700)
        (state / "traces").symlink_to(target)
        assert "symlink" in _start_fails(base, state)
        assert target.stat().st_mode & 0o777 == 0o700 and not list(target.iterdir())

        sockets = base / "sockets"
        sockets.mkdir()
        os.chown(sockets, NOBODY, NOBODY)
        assert "refusing socket directory" in _start_fails(base, base / "ok-state", sockets)


def test_a_sticky_tmp_and_a_fresh_state_directory_are_fine(tmp_path: Path) -> None:
    """/tmp (sticky, root's) above a state directory the daemon makes itself: it starts."""
    with shared_tmp() as base:
        d = DaemonProc(tmp_path)
        d.state = base / "fresh" / "state"
        try:
            d.start()
            assert d.state.stat().st_mode & 0o777 == 0o755
            assert (d.state / "traces").stat().st_mode & 0o777 == 0o711
            assert (d.state / "sessions").stat().st_mode & 0o777 == 0o700
            assert d.socket.stat().st_mode & 0o777 == 0o666  # from the umask at bind, no chmod
        finally:
            d.cleanup()


def test_the_hook_does_not_talk_to_another_users_socket(tmp_path: Path) -> None:
    """A socket owned by uid 65534 (a fake daemon): the hook goes embedded and sends nothing."""
    with shared_tmp() as base:
        theirs = base / "fake"
        theirs.mkdir()
        os.chown(theirs, NOBODY, NOBODY)
        path = theirs / "d.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        os.lchown(path, NOBODY, NOBODY)
        listener.listen(8)
        listener.settimeout(0.5)
        try:
            proc = start_fake_run(tmp_path, path, epochs=2, period=0.05)
            line = wait_for_line(proc, "SINK")
            _, err = proc.communicate(timeout=60)
            assert "embedded" in line, line
            assert "not trusted" in err and str(path) in err
            with pytest.raises(TimeoutError):
                listener.accept()  # nobody ever connected
        finally:
            listener.close()
