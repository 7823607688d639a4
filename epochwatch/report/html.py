"""The HTML report: one self-contained page, per run the findings first, then the plots.

Renders plain records only: each run is the dict summary.py builds plus `figures` (from
figures.build), and the lineage is Lineage.to_dict(). Nothing is fetched when the page
opens: the stylesheet is inline, plots are inline SVG (see plots.py for why), there is no
script, and a Content-Security-Policy forbids anything else, so a report mailed around or
opened from an air-gapped box looks the same. Every string from a trace (run ids, paths,
metric names, titles) is escaped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import IO, Any

from epochwatch import __version__
from epochwatch.analysis.findings import SEVERITIES
from epochwatch.analysis.units import fmt_in
from epochwatch.report import headline, html_evidence, plots
from epochwatch.report.html_style import CSS
from epochwatch.report.summary import table_indexes

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
TABLE_ROWS = 120
MOST_SEVERE_FIRST = tuple(reversed(SEVERITIES))


def _e(v: Any) -> str:
    return escape(str(v), quote=True)


def render(
    out: IO[str],
    runs: Iterable[Mapping[str, Any]],
    problems: Sequence[str] = (),
    lineage: Mapping[str, Any] | None = None,
    *,
    jobs: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Write the page to `out`. Each run: summary.py's dict, plus `figures` to plot."""
    runs = list(runs)
    anchors = {str(r.get("run_id")): f"run-{i}" for i, r in enumerate(runs)}
    total = sum(len(r.get("findings") or []) for r in runs)
    when = time.strftime("%Y-%m-%d %H:%M")
    title = (
        f"epochwatch report: {runs[0].get('run_id')}"
        if len(runs) == 1
        else f"epochwatch report: {len(runs)} runs"
    )
    w = out.write
    w('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n')
    w('<meta name="viewport" content="width=device-width, initial-scale=1">\n')
    w(f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n')
    w(f"<title>{_e(title)}</title>\n<style>{CSS}</style></head>\n<body><main>\n")
    w("<header><h1>epochwatch report</h1>\n")
    w(
        f'<p class="sub">{len(runs)} run{"s" if len(runs) != 1 else ""}, {total} finding{"s" if total != 1 else ""}'
    )
    w(f" · generated {_e(when)} by epochwatch {_e(__version__)}</p></header>\n")
    if len(runs) > 1:
        _nav(out, runs, anchors)
    if problems:
        w(f'<section class="problems"><h3>Unusable traces ({len(problems)})</h3><ul>')
        for p in problems:
            w(f"<li>{_e(p)}</li>")
        w("</ul></section>\n")
    if lineage:
        _lineage(out, lineage, anchors)
    for job in jobs:
        _job(out, job, anchors)
    for run in runs:
        _run(out, run, anchors[str(run.get("run_id"))])
    w(
        "<footer>Plots: epochs on the x axis; dashed black: fitted trend; dotted red: projection toward a limit; "
    )
    w("purple: a restore; amber: where a finding was reported. Memory is the epoch-end reading.</footer>\n")
    w("</main></body></html>\n")


def _job(out: IO[str], job: Mapping[str, Any], anchors: Mapping[str, str]) -> None:
    """A distributed job: its workers (linked to their runs) and its job-level findings."""
    workers = job.get("workers") or []
    out.write(f'<section class="job"><h2>Job {_e(job.get("job_id"))}</h2>\n<ul>')
    for w in workers:
        rid = str(w.get("run_id"))
        link = f'<a href="#{anchors[rid]}">{_e(rid)}</a>' if rid in anchors else _e(rid)
        out.write(f"<li>{_e(w.get('worker'))} on {_e(w.get('hostname') or '?')}: {link}</li>")
    out.write("</ul>\n")
    findings = job.get("findings") or []
    out.write(f"<h3>Job findings ({_e(headline.findings(findings))})</h3>\n")
    if not findings:
        out.write('<p class="none">No straggler: the workers kept pace with each other.</p>\n')
    for f in findings:
        _finding(out, f)
    out.write("</section>\n")


def _counts(findings: Sequence[Mapping[str, Any]]) -> str:
    counts = [(sev, sum(1 for f in findings if f.get("severity") == sev)) for sev in MOST_SEVERE_FIRST]
    parts = [f'<span class="badge {sev}">{n} {sev}</span>' for sev, n in counts if n]
    return " ".join(parts) or '<span class="none">no findings</span>'


def _nav(out: IO[str], runs: Sequence[Mapping[str, Any]], anchors: Mapping[str, str]) -> None:
    out.write("<nav><h3>Runs</h3><ul>")
    for r in runs:
        rid = str(r.get("run_id"))
        out.write(
            f'<li><a href="#{anchors[rid]}">{_e(rid)}</a> · {_e(r.get("epochs", 0))} epochs · '
            f"{_counts(r.get('findings') or [])}</li>"
        )
    out.write("</ul></nav>\n")


def _lineage(out: IO[str], lineage: Mapping[str, Any], anchors: Mapping[str, str]) -> None:
    """Which run resumed from which: a tree by content hash, plus modified checkpoints."""
    links = [lk for lk in lineage.get("links") or [] if isinstance(lk, Mapping)]
    by_hash = [lk for lk in links if lk.get("match") == "sha256"]
    modified = [lk for lk in links if lk.get("match") == "path"]
    if not by_hash and not modified:
        return
    out.write('<section class="lineage"><h3>Lineage of restored runs</h3>\n')
    children: dict[str, list[Mapping[str, Any]]] = {}
    for lk in by_hash:
        children.setdefault(str(lk.get("parent")), []).append(lk)
    child_ids = {str(lk.get("child")) for lk in by_hash}
    roots = [p for p in children if p not in child_ids]

    def name(run_id: str) -> str:
        a = anchors.get(run_id)
        return (
            f'<a href="#{a}">{_e(run_id)}</a>'
            if a
            else f"{_e(run_id)} <span class='none'>(not in this report)</span>"
        )

    def walk(run_id: str, seen: set[str]) -> None:
        out.write("<ul>")
        for lk in children.get(run_id, []):
            child = str(lk.get("child"))
            how = f"restored {_e(_base(lk.get('restore_path')))}"
            if isinstance(lk.get("save_iterations"), int):
                how += f", saved at step {_e(lk['save_iterations'])}"
            out.write(f"<li>{name(child)} <span class='none'>← {how}</span>")
            if child not in seen:
                walk(child, seen | {child})
            out.write("</li>")
        out.write("</ul>")

    if roots:
        out.write("<ul>")
        for root in sorted(roots):
            out.write(f"<li>{name(root)}")
            walk(root, {root})
            out.write("</li>")
        out.write("</ul>\n")
    for lk in modified:
        out.write(
            f"<p>{name(str(lk.get('child')))} restored {_e(lk.get('restore_path'))}, which run "
            f"{name(str(lk.get('parent')))} saved with other bytes: the checkpoint was modified.</p>\n"
        )
    out.write("</section>\n")


def _base(path: Any) -> str:
    text = str(path or "?")
    return text.rstrip("/").rsplit("/", 1)[-1] or text


def _finding(out: IO[str], f: Mapping[str, Any], fits: int | None = None) -> None:
    sev = str(f.get("severity", "info"))
    sev = sev if sev in SEVERITIES else "info"
    at = headline.moment(f, fits)
    epoch = f" · {_e(at)}" if at else ""
    target = f" · {_e(f['target'])}" if f.get("target") else ""
    src = ' <span class="src">[from the trace]</span>' if f.get("source") == "trace" else ""
    out.write(f'<div class="finding sev-{sev}"><span class="badge {sev}">{sev}</span> ')
    out.write(f'<span class="kind">{_e(f.get("kind"))}</span>{target}{epoch}{src}')
    out.write(f'<div class="title">{_e(f.get("title", ""))}</div>')
    items = html_evidence.items(f)
    if items:
        out.write("<dl>")
        for k, v in items:
            out.write(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>")
        out.write("</dl>")
    where = f.get("where")
    if isinstance(where, Mapping) and where.get("summary"):
        out.write(f'<p class="where"><b>Where:</b> {_e(str(where["summary"]))}</p>')
    if f.get("hint"):
        out.write(f'<p class="fix"><b>Fix:</b> {_e(f["hint"])}</p>')
    out.write(
        f"<details><summary>all evidence</summary><pre>{_e(html_evidence.raw(f))}</pre></details></div>\n"
    )


def _figure(out: IO[str], fig: Mapping[str, Any], uid: str) -> None:
    caption = f" <span>{_e(fig['caption'])}</span>" if fig.get("caption") else ""
    out.write(f"<figure><figcaption>{_e(fig.get('title', ''))}{caption}</figcaption>")
    out.write(plots.svg(fig, uid))
    for note in fig.get("notes") or []:
        out.write(f'<p class="note">{_e(note)}</p>')
    out.write("</figure>\n")


def _table(out: IO[str], run: Mapping[str, Any]) -> None:
    table = run.get("epoch_table") or {}
    rows = table.get("rows") or []
    if not rows:
        return
    idx, _ = table_indexes(len(rows), TABLE_ROWS)
    units = table.get("units") or []
    shown = (
        f"{len(idx)} of {run.get('epochs', len(rows))}" if len(idx) < run.get("epochs", len(rows)) else "all"
    )
    out.write(f"<details><summary>Epoch table ({_e(shown)} epochs)</summary><table class='epochs'><tr>")
    for name in table.get("columns") or []:
        out.write(f"<th>{_e(name)}</th>")
    out.write("</tr>")
    kinds = table.get("kinds") or [None] * len(rows)
    for i in idx:
        cells = [fmt_in(u, v) for u, v in zip(units, rows[i], strict=False)]
        if cells:
            cells[0] = headline.kind_cell(kinds[i] if i < len(kinds) else None, cells[0])
        out.write("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    out.write("</table></details>\n")


def _run(out: IO[str], run: Mapping[str, Any], anchor: str) -> None:
    findings = run.get("findings") or []
    out.write(f'<section class="run" id="{anchor}"><h2>{_e(run.get("run_id"))}</h2>\n')
    out.write('<dl class="meta">')
    for k, v in headline.rows(run):
        out.write(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>")
    out.write("</dl>\n")
    for n in (run.get("notices") or [])[:5]:
        out.write(f'<p class="note">notice: {_e(n.get("part"))}: {_e(n.get("message"))}</p>')
    out.write(f"<h3>Findings ({_e(headline.findings(findings))})</h3>\n")
    if not findings:
        out.write('<p class="none">No findings: nothing grew, retraced or misbehaved after a restore.</p>\n')
    for f in findings:
        _finding(out, f, (run.get("training") or {}).get("fits"))
    figures = run.get("figures") or []
    if figures:
        out.write('<h3>Plots</h3><div class="grid">\n')
        for i, fig in enumerate(figures):
            _figure(out, fig, f"{anchor}-{i}")
        out.write("</div>\n")
    unchanged = run.get("unchanged_dirs") or []
    if unchanged:
        names = ", ".join(f"{d.get('path')} ({d.get('role')})" for d in unchanged)
        out.write(f'<p class="note unchanged">Unchanged during the run, not plotted: {_e(names)}</p>\n')
    elif not run.get("epochs"):
        out.write('<p class="none">No epochs recorded: nothing to plot.</p>\n')
    _table(out, run)
    out.write("</section>\n")
