"""`epochwatch report PATH... [--format text|json|html] [--output FILE]`: what happened in each run.

Per run: the fingerprint, how it ended, the findings (most severe first) and the epoch
table, after the lineage of restored runs; HTML adds plots (report/html.py). Every trace is
analyzed even when others are unusable; exit status: 0 when every path gave a usable
trace, 2 when any did not (each with a one-line reason on stderr, and listed under
"unusable"/"problems" in the output) or when there was nothing to read. On a terminal,
stderr shows a progress bar by bytes read while the traces are analyzed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, cast

from epochwatch.analysis.files import Analyzed, analyze_file
from epochwatch.analysis.jobs import jobs_report, worker_view
from epochwatch.analysis.restore.lineage import Lineage
from epochwatch.analysis.restore.parents import ParentCache
from epochwatch.analysis.restore.scan import scan_lineage
from epochwatch.cli.base import UsageError
from epochwatch.report import figures, overlay, progress_bar
from epochwatch.report import html as html_report
from epochwatch.report import json as json_report
from epochwatch.report import text as text_report
from epochwatch.report.summary import summarize
from epochwatch.text_safety import SafeStream, escape, escape_tree
from epochwatch.trace.reader import TraceError, find_traces

FORMATS = ("text", "json", "html")


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _counted(files: Sequence[Path], bar: progress_bar.Progress | None) -> Iterator[Path]:
    """The files, advancing `bar` by each one's size once the consumer moves past it."""
    for f in files:
        if bar is not None:
            bar.set_name(f.name)
        yield f
        if bar is not None:
            bar.advance(_size(f))


class ReportCommand:
    name = "report"
    help = "Analyze trace files (or directories of traces): findings with evidence and fixes, epoch table."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="trace files or directories of traces")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default="text",
            help="text (default), json, or html (one self-contained page with plots)",
        )
        parser.add_argument("--output", "-o", metavar="FILE", help="write the report here instead of stdout")
        parser.add_argument(
            "--jobs",
            "-j",
            type=int,
            default=0,
            metavar="N",
            help="analyze N traces at once in worker processes (default: one per CPU when there are several traces)",
        )

    def run(self, args: argparse.Namespace) -> int:
        html = args.format == "html"
        files, path_problems = find_traces(args.paths)
        sizes = sum(_size(f) for f in files)
        bar = progress_bar.for_stream(getattr(sys.stderr, "unsafe", sys.stderr), sizes * 2)
        runs: list[dict[str, Any]] = []
        problems: list[str] = []
        lineage: Lineage | None = None
        try:
            # One cheap pass over run_start/save/restore lines: who resumed from whom.
            if bar is not None:
                bar.label = "lineage"
            lineage = scan_lineage(_counted(files, bar))
            if bar is not None:
                bar.label, bar.name = "reading", ""
            for item in self._summaries(args, files, path_problems, lineage, bar):
                if isinstance(item, dict):
                    runs.append(item)
                else:
                    problems.append(item)
                    if bar is not None:
                        bar.close()
                    sys.stderr.write(f"epochwatch report: {escape(item)}\n")
        finally:
            if bar is not None:
                bar.close()
        if not runs and not problems:
            raise UsageError("no traces to report on")
        # Each run's worker view (made where it was analysed) feeds the job-level analysis.
        jobs = jobs_report([view for r in runs if (view := r.pop(_WORKER, None))])
        with ExitStack() as stack:
            out: IO[str] = sys.stdout
            if args.output:  # escaped as stdout is (cli/__init__.py): a file is read on a terminal too
                out = cast(IO[str], SafeStream(stack.enter_context(open(args.output, "w", encoding="utf-8"))))
            links = lineage.to_dict() if lineage is not None else None
            if html and links:
                overlay.overlay_parents(runs, links.get("links") or [])
            # each problem was said on stderr already: on the same screen, not again
            problems_shown = [] if out is sys.stdout and _same_screen() else problems
            if html:
                html_report.render(out, runs, problems, links, jobs=jobs)
            elif args.format == "json":
                json_report.render(out, runs, problems, links, jobs)
            else:
                # Every string from a trace on one line, inert on a terminal.
                lines = lineage.text_lines() if lineage is not None else ()
                text_report.render(
                    out,
                    escape_tree(runs),
                    escape_tree(problems_shown),
                    escape_tree(list(lines)),
                    escape_tree(jobs),
                )
            out.flush()
        return 2 if problems else 0

    def _summaries(
        self,
        args: argparse.Namespace,
        files: Sequence[Path],
        path_problems: Sequence[str],
        lineage: Lineage,
        bar: progress_bar.Progress | None,
    ) -> Iterator[dict[str, Any] | str]:
        """Each trace's summary (or one-line problem), in file order; in parallel when asked.

        Workers get a path and send back a plain summary dict, never a Run: a 1 GB trace
        stays in its worker, and the parent holds only what it renders.
        """
        html = args.format == "html"
        jobs = args.jobs if args.jobs > 0 else (os.cpu_count() or 1)
        jobs = min(jobs, len(files))
        yield from path_problems
        if jobs <= 1:
            on_read = bar.advance if bar is not None else None
            parents = ParentCache()
            for f in files:
                yield _summarize_path(f, lineage, parents, html, on_read)
            return
        try:
            # The lineage goes to each worker once, not with every file.
            pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_init, initargs=(lineage, html))
        except (OSError, ValueError, NotImplementedError):
            parents = ParentCache()
            yield from (_summarize_path(f, lineage, parents, html, None) for f in files)
            return
        with pool:
            chunk = max(1, min(16, len(files) // (jobs * 4)))
            for f, item in zip(files, pool.map(_worker_summarize, files, chunksize=chunk), strict=True):
                if bar is not None:
                    bar.set_name(f.name)
                    bar.advance(_size(f))
                yield item


_WORKER = "_worker_view"  # carried from a worker process to the parent, never rendered
_worker_state: dict[str, Any] = {}


def _worker_init(lineage: Lineage | None, html: bool) -> None:
    _worker_state["lineage"], _worker_state["html"] = lineage, html
    _worker_state["parents"] = ParentCache()  # each worker reads the parents it needs once


def _worker_summarize(path: Path) -> dict[str, Any] | str:
    state = _worker_state
    return _summarize_path(path, state["lineage"], state["parents"], state["html"], None)


def _summarize_path(
    path: Path,
    lineage: Lineage | None,
    parents: ParentCache,
    html: bool,
    on_read: Callable[[int], None] | None,
) -> dict[str, Any] | str:
    """One trace's summary, or its one-line problem (runs in a worker process with --jobs)."""
    try:
        return _summary(analyze_file(path, on_read, lineage, parents), html)
    except TraceError as exc:
        return str(exc)
    except (OSError, ValueError, RecursionError) as exc:
        return f"{path}: cannot analyze ({type(exc).__name__}: {exc})".splitlines()[0]


def _summary(item: Analyzed, html: bool) -> dict[str, Any]:
    summary = summarize(item)
    view = worker_view(item)
    if view is not None:
        summary[_WORKER] = view
    if html:  # restores already carry their parent (analyze_paths annotated them)
        built = figures.build(item, summary.get("findings") or [])
        summary["figures"], summary["unchanged_dirs"] = built["figures"], built.get("unchanged_dirs", [])
    return summary


def _same_screen() -> bool:
    """stdout and stderr are one terminal: a problem said on stderr needs no second telling."""
    try:
        return sys.stdout.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


COMMAND = ReportCommand()
