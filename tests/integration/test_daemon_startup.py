"""What the daemon refuses to start on (docs/security.md): here, a state directory it cannot write."""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest


def _daemon_as(uid: int, state: Path, sock: Path, timeout: float = 20.0) -> tuple[int | None, str]:
    """Run `epochwatch daemon` in a forked child that dropped to `uid`; (exit code or None
    if it was still running after `timeout`, its stderr)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 70
        try:
            os.close(r)
            os.dup2(w, 2)
            os.dup2(w, 1)
            sys.stdout = sys.stderr = open(w, "w", closefd=False)  # noqa: SIM115 (pytest swapped them)
            # Import first: another user cannot read this interpreter's files under /root.
            import epochwatch.daemon.server  # noqa: F401
            from epochwatch.cli import main

            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            code = main(["daemon", "--socket", str(sock), "--state-dir", str(state)])
        except BaseException as exc:
            os.write(2, f"child failed: {exc!r}\n".encode())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(w)
    out = b""
    deadline = time.monotonic() + timeout
    status: int | None = None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([r], [], [], 0.2)
        if ready:
            out += os.read(r, 65536)
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
            break
        if b"listening on" in out:
            break
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    while True:
        ready, _, _ = select.select([r], [], [], 0)
        chunk = os.read(r, 65536) if ready else b""
        if not chunk:
            break
        out += chunk
    os.close(r)
    return status, out.decode(errors="replace")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_daemon_that_cannot_write_its_state_dir_refuses_to_start() -> None:
    # Under /tmp itself: pytest's tmp_path sits in a directory only root may enter.
    root = Path(tempfile.mkdtemp(prefix="ews", dir="/tmp"))
    try:
        root.chmod(0o755)
        state = root / "state"
        for d in (state, state / "traces", state / "sessions"):
            d.mkdir(mode=0o755)  # root's, as a root daemon left it
        sock_dir = root / "run"
        sock_dir.mkdir()
        os.chown(sock_dir, 65534, 65534)
        code, err = _daemon_as(65534, state, sock_dir / "d.sock")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert "listening on" not in err, err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "state directory" in lines[0] and "ermission denied" in lines[0], err
