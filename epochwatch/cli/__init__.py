"""`epochwatch` command line: one module per subcommand, registered in COMMANDS.

Every subcommand follows the Command protocol of `epochwatch.cli.base`; main() maps
errors to exit codes so users see one line, never a traceback:
0 ok, 1 findings at or above the threshold (check), 2 unusable input or arguments,
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from epochwatch import __version__
from epochwatch.cli import check, compare, daemon, report, run, service, status, top
from epochwatch.cli.base import Command, UsageError
from epochwatch.text_safety import SafeStream, escape

# Commands that print what traces and other users' runs contain: their stdout and stderr
# escape anything that would act on a terminal (renderers escape single-line fields).
_UNTRUSTED_OUTPUT = frozenset({"report", "check", "compare", "status"})

COMMANDS: list[Command] = [
    report.COMMAND,
    check.COMMAND,
    run.COMMAND,
    daemon.COMMAND,
    status.COMMAND,
    compare.COMMAND,
    top.COMMAND,
    service.COMMAND,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epochwatch",
        description="Trace, watch and explain TensorFlow/Keras training runs.",
    )
    parser.add_argument("--version", action="version", version=f"epochwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, bad arguments are 2
        return int(exc.code) if isinstance(exc.code, int) else 2
    command: Command | None = getattr(args, "_command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    saved = sys.stdout, sys.stderr
    if command.name in _UNTRUSTED_OUTPUT:
        sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
    try:
        return command.run(args)
    except UsageError as exc:
        sys.stderr.write(f"epochwatch {command.name}: {escape(exc)}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `epochwatch report ... | head`: the reader left; that is not an error. Point stdout
        # at devnull so the interpreter's final flush does not complain a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as exc:
        sys.stderr.write(
            f"epochwatch {command.name}: {escape(exc.strerror or exc)}: {escape(exc.filename or '')}\n"
        )
        return 2
    finally:
        sys.stdout, sys.stderr = saved


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
