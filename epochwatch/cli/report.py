"""`epochwatch report PATH...`: what happened in each run (placeholder until the analysis lands)."""

from __future__ import annotations

import argparse
import sys

from epochwatch.cli.base import UsageError
from epochwatch.trace.reader import TraceError, find_traces
from epochwatch.trace.run import load_run


class ReportCommand:
    name = "report"
    help = "Summarise trace files or directories of traces."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")

    def run(self, args: argparse.Namespace) -> int:
        files, problems = find_traces(args.paths)
        for p in problems:
            sys.stderr.write(f"epochwatch report: {p}\n")
        if not files:
            raise UsageError("no traces to report on")
        for f in files:
            try:
                run = load_run(f)
            except TraceError as exc:
                sys.stderr.write(f"epochwatch report: {exc}\n")
                continue
            print(f"{run.run_id}: {len(run.epochs)} epochs, ended {run.ended}")
        return 0


COMMAND = ReportCommand()
