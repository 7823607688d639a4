"""`epochwatch check PATH... [--fail-on info|warning|critical]`: a gate for scripts and CI.

Prints one line per finding at or above the level, one line per trace that had lines
skipped (torn, not JSON, not a record: how many of how many), then a summary line.
Exit status: 0 clean; 1 findings at or above the level; 2 unusable input or arguments
(a one-line reason on stderr per unusable path). Unusable input wins over findings: a
gate that could not read a trace cannot vouch for it. Every usable trace is still
checked. With --strict, a trace with any skipped line counts as unusable input (exit 2):
a trace mostly made of damage must not pass as "ok".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from epochwatch.analysis.files import Analyzed, analyze_paths
from epochwatch.analysis.findings import SEVERITIES, Finding, severity_rank
from epochwatch.analysis.jobs import build_jobs, worker_view
from epochwatch.analysis.restore.scan import scan_lineage
from epochwatch.cli.base import UsageError
from epochwatch.text_safety import escape
from epochwatch.trace.reader import find_traces


class CheckCommand:
    name = "check"
    help = "Exit 1 when any trace has findings at or above a severity (0 clean, 2 unusable input)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="trace files or directories of traces")
        parser.add_argument(
            "--fail-on",
            choices=SEVERITIES,
            default="warning",
            help="lowest severity that fails (default: warning)",
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="a trace with any skipped (damaged) line is unusable input: exit 2",
        )

    def run(self, args: argparse.Namespace) -> int:
        level = severity_rank(args.fail_on)
        runs = failing = unusable = damaged = skipped = 0
        views = []
        files, _ = find_traces(args.paths)
        lineage = scan_lineage(files)  # restore findings across the given traces
        for item in analyze_paths(args.paths, lineage=lineage):
            if not isinstance(item, Analyzed):
                unusable += 1
                sys.stderr.write(f"epochwatch check: {escape(item)}\n")
                continue
            runs += 1
            view = worker_view(item)
            if view is not None:
                views.append(view)
            stats = item.run.stats
            if stats.skipped:
                damaged += 1
                skipped += stats.skipped
                sys.stdout.write(f"{escape(item.path)}: {stats.summary()}\n")
                if args.strict:
                    unusable += 1
            failing += _say_failing(escape(item.path), [*item.findings, *item.recorded], level)
        jobs = build_jobs(views)
        for job in jobs:  # job-level findings (e.g. straggler) count like any other
            failing += _say_failing(f"job {escape(job.job_id)}", job.findings, level)
        if not runs and not unusable:
            raise UsageError("no traces to check")
        verdict = "unusable input" if unusable else ("fail" if failing else "ok")
        sys.stdout.write(
            f"{verdict}: {runs} run(s)"
            + (f" in {len(jobs)} distributed job(s)" if jobs else "")
            + f" checked, {failing} finding(s) at or above {args.fail_on}"
            + (f", {skipped} line(s) skipped in {damaged} trace(s)" if skipped else "")
            + (f", {unusable} path(s) unusable" if unusable else "")
            + "\n"
        )
        if unusable:
            return 2
        return 1 if failing else 0


def _say_failing(where: str, findings: Iterable[Finding], level: int) -> int:
    """One line for each finding at or above `level`; returns how many."""
    shown = [f for f in findings if severity_rank(f.severity) >= level]
    for f in shown:
        target = f" [{escape(f.target)}]" if f.target else ""
        sys.stdout.write(f"{where}: {escape(f.severity)} {escape(f.kind)}{target}: {escape(f.title)}\n")
    return len(shown)


COMMAND = CheckCommand()
