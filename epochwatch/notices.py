"""Notices about the host rather than the run: said once per host, or only when debugging.

A training process starts many times on the same machine. "No NVIDIA driver here" on a
CPU box, or "/tmp is watched at its top level only", is true every time and news only
the first: repeating it in every run teaches users to skip epochwatch's lines. So, in the
training process, such notices are said once per host and user (a marker file under the
user's cache directory), and facts that are simply how the machine is (no GPU) are said
only with EPOCHWATCH_DEBUG=1. The daemon and the CLI say them as before: one process,
one log.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

from epochwatch import envvars
from epochwatch.guard import say

# Set by the hook: this process is a training process (repeat notices are held back).
in_training_process = False


def debug(message: str) -> None:
    """Said only with EPOCHWATCH_DEBUG set (to anything but 0)."""
    if os.environ.get(envvars.EPOCHWATCH_DEBUG, "") not in ("", "0"):
        say(message)


def host_fact(message: str) -> None:
    """How this machine is (no GPU, no driver): a debug line in training, said elsewhere."""
    if in_training_process:
        debug(message)
    else:
        say(message)


def once_per_host(key: str, message: str) -> None:
    """Said the first time on this host (for this user) in training; a debug line later."""
    if not in_training_process:
        say(message)
        return
    marker = _marker(key)
    if marker is None:
        say(message)
        return
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        with open(marker, "x"):
            pass
    except FileExistsError:
        debug(message)
        return
    except OSError:
        pass  # no cache to remember it in: say it, as before
    say(f"{message} (said once on this host)")


def _marker(key: str) -> Path | None:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not base or base.startswith("~"):
        return None
    digest = hashlib.sha256(f"{socket.gethostname()}\0{key}".encode()).hexdigest()[:24]
    return Path(base) / "epochwatch" / "said" / digest
