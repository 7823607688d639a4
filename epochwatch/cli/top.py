"""`epochwatch top [--socket PATH | --dir DIR] [--interval S]`: the runs on this host, live.

Over the daemon (its status socket) or over a directory of traces (the newest ones,
followed as they grow). Without either: the daemon when its socket exists, else
$EPOCHWATCH_DIR (./epochwatch-traces). On a terminal the view refreshes in place until
`q`; with --once, or when stdout is not a terminal, it prints one snapshot and exits.
"""

from __future__ import annotations

import argparse
import curses
import os
import sys

from epochwatch.cli.base import UsageError
from epochwatch.envvars import DEFAULT_SOCKET, socket_path, trace_dir
from epochwatch.top import layout, screen
from epochwatch.top.status_source import DaemonSource
from epochwatch.top.tail import DirSource
from epochwatch.trace.client import DaemonUnavailable


def choose_source(args: argparse.Namespace) -> DaemonSource | DirSource:
    if args.dir:
        return DirSource(args.dir)
    path = args.socket or socket_path()
    if args.socket or os.path.exists(path):
        source = DaemonSource(path)
        try:
            source.check()  # a daemon that cannot be asked at all: one line, exit 2
        except DaemonUnavailable as exc:
            raise UsageError(str(exc)) from None
        return source
    return DirSource(trace_dir())


class TopCommand:
    name = "top"
    help = "Live view of the runs on this host: epoch, epoch time, memory, retraces, findings (q quits)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        where = parser.add_mutually_exclusive_group()
        where.add_argument("--socket", metavar="PATH", help=f"the daemon's socket (default {DEFAULT_SOCKET})")
        where.add_argument("--dir", metavar="DIR", help="a directory of traces instead of the daemon")
        parser.add_argument(
            "--interval", type=float, default=1.0, metavar="S", help="seconds between refreshes"
        )
        parser.add_argument("--once", action="store_true", help="print one snapshot and exit")

    def run(self, args: argparse.Namespace) -> int:
        if not args.interval > 0:
            raise UsageError("--interval must be a positive number of seconds")
        source = choose_source(args)
        if args.once or not (sys.stdout.isatty() and sys.stdin.isatty()):
            width, _ = layout.terminal_size()
            runs = source.poll()
            lines = layout.render(
                runs,
                max(layout.MIN_WIDTH, width),
                10_000,
                source=source.label,
                error=source.error,
                footer=False,
            )
            for line in lines:
                sys.stdout.write(line.text.rstrip() + "\n")
            return 0
        try:
            return screen.run(source, max(0.1, args.interval))
        except curses.error as exc:
            raise UsageError(f"cannot drive this terminal ({exc}); try --once") from None
        except KeyboardInterrupt:
            return 0


COMMAND = TopCommand()
