"""`epochwatch service print|install`: the daemon's systemd unit and friends without the source tree.

A pip install has no checkout to copy `systemd/` from, so the files ship as package data in
`epochwatch/share/` (the only copies: the tests and docs read them there) and this command
prints them, or writes them where systemd and the daemon look. The unit's `ExecStart` is
rewritten for this installation: the `epochwatch` entry point next to this interpreter, so a
venv in /opt works without editing the unit.
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
from pathlib import Path

from epochwatch.cli.base import UsageError

SHARE = Path(__file__).resolve().parent.parent / "share"

# What `epochwatch service print NAME` knows, and the file in SHARE behind each name.
FILES: dict[str, str] = {
    "unit": "epochwatch.service",
    "metrics": "epochwatch-metrics.conf",
    "sysusers": "epochwatch.sysusers",
    "config": "daemon.toml",
    "alerts": "prometheus-alerts.yml",
    "dashboard": "grafana-dashboard.json",
}

# The unit ships with this ExecStart program; `unit_text` puts this installation's in its place.
SHIPPED_ENTRY = "/usr/local/bin/epochwatch"

# Where `install` writes each file, relative to --prefix.
UNIT_PATH = "etc/systemd/system/epochwatch.service"
DROP_IN_PATH = "etc/systemd/system/epochwatch.service.d/metrics.conf"
SYSUSERS_PATH = "etc/sysusers.d/epochwatch.conf"
CONFIG_PATH = "etc/epochwatch/daemon.toml"


def shipped(name: str) -> Path:
    """The shipped file for `name` (a key of FILES)."""
    return SHARE / FILES[name]


def entry_point() -> str:
    """How systemd should start this installation's epochwatch: its script, else `python -m`."""
    script = Path(sysconfig.get_path("scripts")) / "epochwatch"
    if script.is_file() and os.access(script, os.X_OK):
        return _quoted(str(script))
    return f"{_quoted(sys.executable)} -m epochwatch"


def _quoted(word: str) -> str:
    return f'"{word}"' if any(c.isspace() for c in word) else word


def unit_text() -> str:
    """The shipped unit with ExecStart pointing at this installation's epochwatch."""
    text = shipped("unit").read_text()
    if f"ExecStart={SHIPPED_ENTRY} " not in text:
        raise RuntimeError("the shipped unit's ExecStart changed; update SHIPPED_ENTRY")
    return text.replace(f"ExecStart={SHIPPED_ENTRY} ", f"ExecStart={entry_point()} ")


def file_text(name: str) -> str:
    return unit_text() if name == "unit" else shipped(name).read_text()


def install(prefix: Path, *, metrics: bool) -> list[str]:
    """Write the unit, the sysusers file, the example config (if none) and optionally the drop-in.

    Returns one line per file saying what happened; an existing config is never overwritten.
    A masked unit is left as it is: UsageError, nothing written (an admin masked it on purpose).
    """
    unit = prefix / UNIT_PATH
    if unit.is_symlink() and os.path.realpath(unit) == os.devnull:  # replacing it would unmask it
        raise UsageError(
            f"{unit} is masked (a link to /dev/null); `systemctl unmask epochwatch`, then install"
        )
    plan = [(UNIT_PATH, "unit", True), (SYSUSERS_PATH, "sysusers", True), (CONFIG_PATH, "config", False)]
    if metrics:
        plan.append((DROP_IN_PATH, "metrics", True))
    lines = []
    for relative, name, replace in plan:
        target = prefix / relative
        if target.exists() and not replace:
            lines.append(f"kept {target} (exists)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(file_text(name))
        tmp.chmod(0o644)
        os.replace(tmp, target)
        lines.append(f"wrote {target}")
    return lines


class ServiceCommand:
    name = "service"
    help = "Print or install the daemon's systemd unit, example config, alert rules and dashboard."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        show = sub.add_parser(
            "print",
            help="print a shipped file to stdout",
            description="unit: the systemd unit (ExecStart for this installation); metrics: its drop-in "
            "for Prometheus; sysusers: the optional group; config: daemon.toml with every default; "
            "alerts: Prometheus alert rules; dashboard: the Grafana dashboard.",
        )
        show.add_argument("file", choices=sorted(FILES), metavar="FILE", help=", ".join(FILES))
        put = sub.add_parser(
            "install",
            help="write the unit, sysusers file and example config under PREFIX (default /)",
            description=f"Writes PREFIX/{UNIT_PATH}, PREFIX/{SYSUSERS_PATH} and, unless it exists, "
            f"PREFIX/{CONFIG_PATH}; with --metrics also PREFIX/{DROP_IN_PATH}. "
            "Then: systemd-sysusers; systemctl daemon-reload; systemctl enable --now epochwatch.",
        )
        put.add_argument("--prefix", default="/", help="root to install under (default /)")
        put.add_argument("--metrics", action="store_true", help="also the drop-in that lets metrics out")

    def run(self, args: argparse.Namespace) -> int:
        if args.action == "print":
            sys.stdout.write(file_text(args.file))
            return 0
        prefix = Path(args.prefix)
        if not prefix.is_dir():
            raise UsageError(f"--prefix {args.prefix}: not a directory")
        for line in install(prefix, metrics=args.metrics):
            print(line)
        if prefix == Path("/"):
            print("next: systemd-sysusers && systemctl daemon-reload && systemctl enable --now epochwatch")
        return 0


COMMAND = ServiceCommand()
