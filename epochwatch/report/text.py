"""The text report: per run the fingerprint, the findings first, then the epoch table.

Renders the plain dicts of summary.py to any text file object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import IO, Any

from epochwatch.analysis.units import evidence_unit, fmt_bytes, fmt_in, fmt_pct, fmt_seconds
from epochwatch.report import headline, html_evidence
from epochwatch.report.summary import table_indexes

TEXT_TABLE_ROWS = 40


def _evidence(f: Mapping[str, Any]) -> str:
    ev = f.get("evidence") or {}
    unit = evidence_unit(str(f.get("kind")), ev)
    parts = []
    per = "fit" if "slope_per_fit" in ev or ev.get("unit") == "fit" else "epoch"  # a loop: a point a fit
    said = headline.point_noun(ev) if per == "epoch" else per  # windows of calls count as epochs
    if ev.get(f"slope_per_{per}") is not None:
        slope = ev[f"slope_per_{per}"]
        ci = ev.get("slope_ci95") or []
        s = f"slope {fmt_in(unit, slope)}/{said}"
        if len(ci) == 2 and None not in ci:
            s += f" (95% CI {fmt_in(unit, ci[0])} to {fmt_in(unit, ci[1])})"
        parts.append(s)
    if "p_value" in ev and ev["p_value"] is not None:
        parts.append(f"p {ev['p_value']:.2g}")
    epochs = ev.get(f"{per}s")
    if isinstance(epochs, list) and len(epochs) == 2 and all(isinstance(e, int) for e in epochs):
        parts.append(f"{said}s {epochs[0] + 1}-{epochs[1] + 1}")  # as Keras counts
    if "epochs_to_limit" in ev:
        lim = f"limit {fmt_bytes(ev['limit'])}" if "limit" in ev else "limit"
        parts.append(f"{lim} in ~{ev['epochs_to_limit']:.0f} {headline.point_noun(ev)}s")
    for key in ("argument", "change", "throttled_share", "share", "swapped_share", "free_source"):
        if key in ev:
            v = ev[key]
            shown = fmt_pct(v) if isinstance(v, float) and key.endswith("share") else v
            parts.append(f"{key.replace('_', ' ')} {shown}")
    if not parts:  # every finding shows its evidence: the generic rows (restore findings, ...)
        parts = [f"{label} {value}" for label, value in html_evidence.items(f)]
    return "; ".join(parts)


def render_findings(out: IO[str], findings: Sequence[Mapping[str, Any]], fits: int | None = None) -> None:
    if not findings:
        out.write("findings  none\n")
        return
    out.write(f"findings ({headline.findings(findings)})\n")
    for f in findings:
        sev = str(f.get("severity", "info")).upper()
        at = headline.moment(f, fits)
        epoch = f" @{at}" if at else ""
        src = " [from trace]" if f.get("source") == "trace" else ""
        target = f" [{f['target']}]" if f.get("target") else ""
        out.write(f"  {sev:<8} {f.get('kind')}{target}{epoch}{src}: {f.get('title')}\n")
        ev = _evidence(f)
        if ev:
            out.write(f"           evidence: {ev}\n")
        causes = html_evidence.causes((f.get("evidence") or {}).get("likely_causes"))
        if causes:
            out.write(f"           moves with: {causes}\n")
        where = f.get("where")
        if isinstance(where, Mapping) and where.get("summary"):
            out.write(f"           where: {where['summary']}\n")
        if f.get("hint"):
            out.write(f"           fix: {f['hint']}\n")


def render_table(out: IO[str], run: Mapping[str, Any], rows_limit: int = TEXT_TABLE_ROWS) -> None:
    table = run.get("epoch_table") or {}
    rows: list[list[Any]] = table.get("rows") or []
    units: list[str] = table.get("units") or []
    if not rows:
        out.write("epochs    none recorded\n")
        return
    kinds: list[str | None] = table.get("kinds") or [None] * len(rows)
    keep, _ = table_indexes(len(rows), rows_limit)
    shown = [rows[i] for i in keep]
    note = ""
    if isinstance(run.get("windows"), int) and run["windows"] > 0:
        note = f", {run['windows']} of them windows of inference calls"
    if len(shown) < run.get("epochs", len(rows)):
        note += f", {len(shown)} shown"
    out.write(f"epochs ({run.get('epochs', len(rows))}{note})\n")
    headers = ["epoch", "time", "loss", "RSS", "GPU mem", "retraces", "watched"]
    cells = [[fmt_in(u, v) for u, v in zip(units, row, strict=False)] for row in shown]
    for i, c in zip(keep, cells, strict=True):
        c[0] = headline.kind_cell(kinds[i] if i < len(kinds) else None, c[0])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    out.write("  " + "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)) + "\n")
    for c in cells:
        out.write("  " + "  ".join(x.rjust(w) for x, w in zip(c, widths, strict=True)) + "\n")
    trends = run.get("trends") or {}
    if trends:
        out.write("trends\n")
        labels = dict(zip(table.get("columns", []), headers, strict=False))
        unit_of = dict(zip(table.get("columns", []), units, strict=False))
        for name, t in trends.items():
            u = unit_of.get(name, "")
            out.write(
                f"  {labels.get(name, name):<9} {t['sparkline']}  {fmt_in(u, t['first'])} -> {fmt_in(u, t['last'])}"
                f" (min {fmt_in(u, t['min'])}, max {fmt_in(u, t['max'])})\n"
            )


def render_run(out: IO[str], run: Mapping[str, Any]) -> None:
    out.write(f"== run {run.get('run_id')} ==\n")
    for label, text in headline.rows(run):
        out.write(f"{label:<9} {text}\n")
    for n in run.get("notices", [])[:5]:
        out.write(f"notice    {n.get('part')}: {n.get('message')}\n")
    render_findings(out, run.get("findings") or [], (run.get("training") or {}).get("fits"))
    render_table(out, run)


def render_job(out: IO[str], job: Mapping[str, Any]) -> None:
    """One distributed job: its workers, then its job-level findings (e.g. straggler)."""
    workers = job.get("workers") or []
    of = f" of {job['world_size']}" if job.get("world_size") else ""
    missing = "" if job.get("complete", True) else " (some workers' traces are missing)"
    out.write(
        f"== job {job.get('job_id')} ({job.get('source') or '?'}): {len(workers)} workers{of}, "
        f"{job.get('epochs', 0)} epochs in common{missing} ==\n"
    )
    for w in workers:
        coll = w.get("collective_seconds_total")
        share = (
            f", {fmt_pct(coll / w['epoch_seconds_total'])} in the all-reduce step"
            if isinstance(coll, int | float) and w.get("epoch_seconds_total")
            else ""
        )
        out.write(
            f"  {w.get('worker')!s:<12} {w.get('hostname') or '?'} · {w.get('run_id')} · "
            f"{w.get('epochs', 0)} epochs, {fmt_seconds(float(w.get('epoch_seconds_total') or 0))}{share}\n"
        )
    render_findings(out, job.get("findings") or [])


def render(
    out: IO[str],
    runs: Iterable[Mapping[str, Any]],
    problems: Sequence[str] = (),
    lineage: Sequence[str] = (),
    jobs: Sequence[Mapping[str, Any]] = (),
) -> None:
    blocks: list[Callable[[IO[str]], None]] = [partial(render_job, job=job) for job in jobs]
    if lineage:
        blocks.append(partial(_lines, head="lineage (which run resumed from which)", lines=lineage))
    blocks += [partial(render_run, run=run) for run in runs]
    if problems:
        blocks.append(partial(_lines, head=f"unusable ({len(problems)})", lines=problems))
    for i, block in enumerate(blocks):  # blocks apart by an empty line
        out.write("\n" if i else "")
        block(out)


def _lines(out: IO[str], head: str, lines: Sequence[str]) -> None:
    out.write(head + "\n")
    for line in lines:
        out.write(f"  {line}\n")
