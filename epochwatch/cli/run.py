"""`epochwatch run -- python train.py ...`: trace a script without editing it.

The command replaces this process (exec), so its pid, output, signals and exit code
are exactly the script's own; a `sitecustomize` shim put first on PYTHONPATH imports
the hook at interpreter start-up.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import epochwatch
from epochwatch import envvars
from epochwatch.cli.base import UsageError


def shim_dir() -> Path:
    """Where the sitecustomize shim lives: inside the installed package, or the source tree."""
    package = Path(epochwatch.__file__).resolve().parent
    for candidate in (package / "_hooks", package.parent / "hooks"):
        if (candidate / "sitecustomize.py").is_file():
            return candidate
    raise UsageError("the sitecustomize shim is missing from this installation (reinstall epochwatch)")


def child_environment(environ: dict[str, str]) -> dict[str, str]:
    env = dict(environ)
    shims = str(shim_dir())
    env["PYTHONPATH"] = os.pathsep.join([shims, *filter(None, [env.get("PYTHONPATH")])])
    env[envvars.EPOCHWATCH_RUN] = "1"
    env[envvars.EPOCHWATCH_PATH] = str(Path(epochwatch.__file__).resolve().parent.parent)
    return env


class RunCommand:
    name = "run"
    help = "Run a training command with epochwatch attached (no change to the script)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")

    def run(self, args: argparse.Namespace) -> int:
        argv = list(args.argv)
        if argv and argv[0] == "--":
            argv = argv[1:]
        if not argv:
            raise UsageError("nothing to run: epochwatch run -- python train.py [ARGS...]")
        env = child_environment(dict(os.environ))
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            sys.stderr.write(f"epochwatch run: cannot run {argv[0]!r}: {exc.strerror or exc}\n")
            return 127 if isinstance(exc, FileNotFoundError) else 126
        return 0  # not reached: exec does not return


COMMAND = RunCommand()
