"""The environment variables epochwatch reads, their defaults, and how they resolve: one home.

The names are part of the contract (README, docs/trace-format.md): the hook, `status`,
`top` and `epochwatch run` all read them from here, so a default cannot drift between
them. Nothing here imports anything heavy: the hook imports it at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# Where embedded traces go: $EPOCHWATCH_DIR/<run_id>.jsonl.
EPOCHWATCH_DIR = "EPOCHWATCH_DIR"
# The daemon's socket; a socket there that accepts the run means daemon mode.
EPOCHWATCH_SOCKET = "EPOCHWATCH_SOCKET"
# Extra directories to watch, os.pathsep-separated.
EPOCHWATCH_WATCH = "EPOCHWATCH_WATCH"
# Anything but "" or "0": the hook does nothing at all.
EPOCHWATCH_DISABLE = "EPOCHWATCH_DISABLE"
# Seconds the hook waits for a daemon that went away before it falls back to embedded mode.
EPOCHWATCH_DAEMON_GRACE = "EPOCHWATCH_DAEMON_GRACE"
# An explicit distributed job id (the same on every worker of one job): wins over what the
# launcher's variables give (epochwatch/identity.py).
EPOCHWATCH_JOB_ID = "EPOCHWATCH_JOB_ID"
# Console lines while training: "1" silences them; "critical"/"warning"/"info" is the lowest
# severity printed (the closing line stays).
EPOCHWATCH_QUIET = "EPOCHWATCH_QUIET"
# Anything but "" or "0": notices that repeat every run (no NVIDIA driver here) are said.
EPOCHWATCH_DEBUG = "EPOCHWATCH_DEBUG"
# "0" (or false/no/off): no findings to the script's TensorBoard log dir / W&B run / MLflow run.
EPOCHWATCH_TENSORBOARD = "EPOCHWATCH_TENSORBOARD"
EPOCHWATCH_WANDB = "EPOCHWATCH_WANDB"
EPOCHWATCH_MLFLOW = "EPOCHWATCH_MLFLOW"
# "0" (or false/no/off): no look inside when a slowdown or a leak is suspected (stack
# sampling, tracemalloc, profiler capture: epochwatch/explain/).
EPOCHWATCH_EXPLAIN = "EPOCHWATCH_EXPLAIN"
# Automatic epochs of scripts that mark none (recorder/auto_epochs.py): steps or seconds per
# window where no data pass is seen, and inference calls per window of a script that only predicts.
EPOCHWATCH_WINDOW_STEPS = "EPOCHWATCH_WINDOW_STEPS"
EPOCHWATCH_WINDOW_SECONDS = "EPOCHWATCH_WINDOW_SECONDS"
EPOCHWATCH_WINDOW_CALLS = "EPOCHWATCH_WINDOW_CALLS"
# Set by `epochwatch run` for hooks/sitecustomize.py (which reads them by name: it runs
# before epochwatch can be imported): attach, and where to import epochwatch from.
EPOCHWATCH_RUN = "EPOCHWATCH_RUN"
EPOCHWATCH_PATH = "EPOCHWATCH_PATH"

DEFAULT_SOCKET = "/run/epochwatch/epochwatch.sock"
DEFAULT_TRACE_DIR = "./epochwatch-traces"


def socket_path(environ: Mapping[str, str] | None = None) -> str:
    """The daemon socket a client uses: $EPOCHWATCH_SOCKET, else the default."""
    env = os.environ if environ is None else environ
    return env.get(EPOCHWATCH_SOCKET) or DEFAULT_SOCKET


def trace_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where embedded traces go: $EPOCHWATCH_DIR, else ./epochwatch-traces."""
    env = os.environ if environ is None else environ
    return Path(env.get(EPOCHWATCH_DIR) or DEFAULT_TRACE_DIR)


def disabled() -> bool:
    """$EPOCHWATCH_DISABLE set to anything but "" or "0"."""
    return os.environ.get(EPOCHWATCH_DISABLE, "") not in ("", "0")


def switched_on(name: str, environ: Mapping[str, str] | None = None) -> bool:
    """An exporter's switch: on unless set to 0, false, no or off."""
    env = os.environ if environ is None else environ
    return env.get(name, "").strip().lower() not in ("0", "false", "no", "off")
