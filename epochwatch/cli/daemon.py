"""`epochwatch daemon`: run the host daemon in the foreground (systemd runs this)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from epochwatch.cli.base import UsageError

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    """`<priority>message`: journald reads the level from the prefix and adds the time itself."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s epochwatch %(levelname)s %(message)s"))
    root = logging.getLogger("epochwatch")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class DaemonCommand:
    name = "daemon"
    help = "Run the host daemon in the foreground: training processes on this host attach to it."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--socket",
            metavar="PATH",
            help="Unix socket to listen on (default /run/epochwatch/epochwatch.sock)",
        )
        parser.add_argument(
            "--state-dir",
            metavar="DIR",
            help="where traces/ and sessions/ live (default /var/lib/epochwatch)",
        )
        parser.add_argument(
            "--config", metavar="FILE", help="TOML config (default /etc/epochwatch/daemon.toml when present)"
        )

    def run(self, args: argparse.Namespace) -> int:
        from epochwatch.daemon.config import ConfigError, load_config
        from epochwatch.daemon.server import Daemon, StartError

        try:
            cfg = load_config(args.config, socket=args.socket, state_dir=args.state_dir)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        setup_logging(cfg.log_level)
        daemon = Daemon(
            cfg, config_path=args.config, flags={"socket": args.socket, "state_dir": args.state_dir}
        )
        try:
            return daemon.run()
        except StartError as exc:
            raise UsageError(str(exc)) from None


COMMAND = DaemonCommand()
