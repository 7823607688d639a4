"""`epochwatch daemon`: run the host daemon in the foreground (systemd runs this)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from epochwatch.cli.base import UsageError
from epochwatch.text_safety import escape, escape_lines

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


# The longest message a log line carries; past it, cut and counted.
MAX_LOG_CHARS = 4096


class _SafeFormatter(logging.Formatter):
    """One log line per message, whatever clients put in it.

    Log messages carry script names, run ids, watched paths and finding fields that
    clients chose. The message (arguments included) is escaped here, at the one place
    every log call passes, so no call site can forget: a newline cannot start a forged
    line, an escape sequence cannot reach the terminal that tails the log. A traceback
    keeps its lines, escaped and indented, so none of them can pose as a journald
    `<priority>` prefix either.
    """

    def format(self, record: logging.LogRecord) -> str:
        cached = record.exc_text  # another handler's unescaped traceback: make our own
        record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        if len(message) > MAX_LOG_CHARS:  # a client's 1 MB field made a 1 MB line
            message = f"{message[:MAX_LOG_CHARS]}... ({len(message) - MAX_LOG_CHARS} characters cut)"
        record.message = escape(message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return "\n".join("  " + line for line in escape_lines(super().formatException(ei)).splitlines())

    def formatStack(self, stack_info: str) -> str:
        return "\n".join("  " + line for line in escape_lines(stack_info).splitlines())


class _JournalFormatter(_SafeFormatter):
    """`<priority>message`: journald reads the level from the prefix and adds the time itself."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(_SafeFormatter("%(asctime)s epochwatch %(levelname)s %(message)s"))
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
        parser.add_argument(
            "--metrics-port",
            metavar="PORT",
            help="serve Prometheus metrics over HTTP on this port (default: off; 0 turns it off)",
        )
        parser.add_argument(
            "--metrics-address",
            metavar="ADDR",
            help="address for --metrics-port (default 127.0.0.1; 0.0.0.0 for every interface)",
        )

    def run(self, args: argparse.Namespace) -> int:
        from epochwatch.daemon.config import ConfigError, load_config
        from epochwatch.daemon.server import Daemon, StartError

        flags = {
            "socket": args.socket,
            "state_dir": args.state_dir,
            "metrics_port": _port(args.metrics_port),
            "metrics_address": args.metrics_address,
        }
        try:
            cfg = load_config(args.config, **flags)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
        setup_logging(cfg.log_level)
        daemon = Daemon(cfg, config_path=args.config, flags=flags)
        try:
            return daemon.run()
        except StartError as exc:
            raise UsageError(str(exc)) from None


def _port(text: str | None) -> int | None:
    """--metrics-port as a number; a one-line usage error otherwise (argparse's would be two)."""
    if text is None:
        return None
    try:
        port = int(text, 10)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise UsageError(f"--metrics-port: expected a port number, 1 to 65535 (0: off), got {text!r}")
    return port


COMMAND = DaemonCommand()
