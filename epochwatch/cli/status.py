"""`epochwatch status`: the runs attached to this host's daemon (yours; root sees all)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from epochwatch.cli.base import UsageError
from epochwatch.envvars import DEFAULT_SOCKET, socket_path
from epochwatch.text_safety import escape_tree
from epochwatch.trace.client import DaemonUnavailable, query_status

TIMEOUT = 3.0


def query(path: str, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """Ask the daemon for its runs; raises UsageError with one line when it cannot."""
    try:
        return query_status(path, timeout)
    except DaemonUnavailable as exc:
        raise UsageError(str(exc)) from None


def _user(uid: Any) -> str:
    try:
        import pwd

        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError, TypeError, ImportError):
        return str(uid)


def _ago(t: Any, now: float) -> str:
    if not isinstance(t, (int, float)):
        return "-"
    secs = max(0, int(now - t))
    clock = time.strftime("%H:%M:%S", time.localtime(t))
    if secs < 120:
        return f"{clock} ({secs}s ago)"
    if secs < 7200:
        return f"{clock} ({secs // 60}m ago)"
    return f"{clock} ({secs // 3600}h ago)"


def render_text(runs: list[dict[str, Any]], out: Any, now: float | None = None) -> None:
    now = time.time() if now is None else now
    if not runs:
        out.write("no runs attached\n")
        return
    header = ("RUN", "PID", "USER", "SCRIPT", "EPOCH", "LAST EPOCH", "FINDINGS")
    rows = []
    for r in runs:
        findings = r.get("findings") or []
        kinds = ", ".join(f"{f.get('kind')}({f.get('severity')})" for f in findings) or "-"
        total = r.get("findings_total")
        if isinstance(total, int) and total > len(findings):  # the daemon lists the first few
            kinds += f" and {total - len(findings)} more"
        epoch = r.get("epoch")
        state = "" if r.get("attached") else " [detached]"
        rows.append(
            (
                f"{r.get('run_id')}{state}",
                str(r.get("pid")),
                _user(r.get("uid")),
                os.path.basename(str(r.get("script") or "-")),
                "-" if epoch is None else str(epoch),
                _ago(r.get("last_epoch_t"), now),
                kinds,
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")


class StatusCommand:
    name = "status"
    help = "Show the runs attached to this host's daemon (yours; root sees every user's)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--socket", metavar="PATH", help=f"daemon socket (default $EPOCHWATCH_SOCKET or {DEFAULT_SOCKET})"
        )
        parser.add_argument("--format", choices=("text", "json"), default="text")

    def run(self, args: argparse.Namespace) -> int:
        path = args.socket or socket_path()
        runs = query(path)
        if args.format == "json":
            json.dump({"socket": path, "runs": runs}, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            render_text(escape_tree(runs), sys.stdout)  # script names and findings: other users' text
        return 0


COMMAND = StatusCommand()
