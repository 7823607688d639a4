"""`epochwatch report PATH... [--format text|json] [--output FILE]`: what happened in each run.

Per run: the fingerprint, how it ended, the findings (most severe first) and the epoch
table. Every trace is analysed even when others are unusable; exit status: 0 when every
path gave a usable trace, 2 when any did not (each with a one-line reason on stderr,
and listed under "unusable"/"problems" in the output) or when there was nothing to read.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from typing import IO, Any

from epochwatch.analysis.files import Analysed, analyse_paths
from epochwatch.cli.base import UsageError
from epochwatch.report import json as json_report
from epochwatch.report import text as text_report
from epochwatch.report.summary import summarize

FORMATS = ("text", "json", "html")
AVAILABLE = ("text", "json")


class ReportCommand:
    name = "report"
    help = "Analyse trace files (or directories of traces): findings with evidence and fixes, epoch table."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="trace files or directories of traces")
        parser.add_argument("--format", choices=FORMATS, default="text", help="text (default) or json")
        parser.add_argument("--output", "-o", metavar="FILE", help="write the report here instead of stdout")

    def run(self, args: argparse.Namespace) -> int:
        if args.format not in AVAILABLE:
            raise UsageError(f"--format {args.format} is not available yet; use text or json")
        runs: list[dict[str, Any]] = []
        problems: list[str] = []
        for item in analyse_paths(args.paths):
            if isinstance(item, Analysed):
                runs.append(summarize(item))
            else:
                problems.append(item)
                sys.stderr.write(f"epochwatch report: {item}\n")
        if not runs and not problems:
            raise UsageError("no traces to report on")
        renderer = json_report if args.format == "json" else text_report
        with ExitStack() as stack:
            out: IO[str] = sys.stdout
            if args.output:
                out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
            renderer.render(out, runs, problems)
            out.flush()
        return 2 if problems else 0


COMMAND = ReportCommand()
