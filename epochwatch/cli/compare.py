"""`epochwatch compare BASE NEW`: two runs side by side, what changed, and what it implies.

Works on any two traces. When NEW restored a save of BASE (or the other way round) the
lineage says so and the findings are the restore findings of that link; otherwise NEW is
judged as if it continued BASE (settings, inputs, versions, machine, speed). Rows that
differ are marked with `*`; "What changed" lists them in words.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import IO, Any, cast

from epochwatch.analysis.files import run_findings
from epochwatch.analysis.findings import Finding, clean, severity_rank
from epochwatch.analysis.restore import compare_findings, record_fields
from epochwatch.analysis.restore.lineage import MATCH_SHA256, build_lineage
from epochwatch.analysis.restore.settings import SHIFT_STD_RATIO, SHIFT_Z
from epochwatch.analysis.run import Run, load_run
from epochwatch.analysis.units import fmt_bytes, fmt_number, fmt_seconds
from epochwatch.cli.base import UsageError
from epochwatch.report.plots import MIN_REL_SPAN
from epochwatch.report.sparkline import sparkline
from epochwatch.text_safety import SafeStream, escape_tree
from epochwatch.trace.reader import TraceError, find_traces, missing

Record = dict[str, Any]
MAX_FEATURES_SHOWN = 8
# Epoch time rows are a change from this ratio on (noise below it on shared machines).
TIME_RATIO = 1.25


@dataclass
class Row:
    """One compared quantity; `changed` says whether the difference matters (marked `*`)."""

    label: str
    base: str
    new: str
    changed: bool


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)

    def add(self, label: str, base: Any, new: Any, changed: bool | None = None) -> None:
        """Add a row; by default any difference between two known values is a change."""
        b, n = _text(base), _text(new)
        if changed is None:
            changed = b != n and "-" not in (b, n)
        self.rows.append(Row(label, b, n, changed))


def _text(v: Any) -> str:
    if v is None or v == "" or v == []:
        return "-"
    if isinstance(v, float):
        return fmt_number(v)
    if isinstance(v, list | tuple):
        return ", ".join(_text(x) for x in v)
    return str(v)


# -- what a run is, in rows ------------------------------------------------------------


def _env(run: Run) -> Record:
    env = (run.start or {}).get("env")
    return env if isinstance(env, dict) else {}


def _fit(run: Run) -> Record:
    if run.fits:
        return run.fits[0]
    training = (run.start or {}).get("training")
    return training if isinstance(training, dict) else {}


def _lr(run: Run) -> Any:
    rate = ((_fit(run).get("optimizer") or {}).get("config") or {}).get("learning_rate")
    if isinstance(rate, dict):
        return f"{rate.get('class_name', 'schedule')}"
    if isinstance(rate, int | float):
        return float(rate)
    lrs = [e.get("lr") for e in run.epochs if isinstance(e.get("lr"), int | float)]
    return lrs[0] if lrs else None


def _losses(run: Run) -> list[float]:
    losses = [(e.get("metrics") or {}).get("loss") for e in run.epochs]
    return [float(v) for v in losses if isinstance(v, int | float)]


def _steady_seconds(run: Run) -> list[float]:
    seen: set[Any] = set()
    out = []
    for e in run.epochs:
        if e.get("fit") not in seen:
            seen.add(e.get("fit"))
            continue
        if isinstance(e.get("seconds"), int | float):
            out.append(float(e["seconds"]))
    return out


def _features(run: Run) -> dict[str, tuple[float, float]]:
    stats = _fit(run).get("input_stats") or {}
    out: dict[str, tuple[float, float]] = {}
    for group, prefix in (("inputs", "x"), ("targets", "y")):
        for name, s in (stats.get(group) or {}).items():
            if not isinstance(s, dict):
                continue
            means, stds = s.get("mean") or [], s.get("std") or []
            label = prefix if name == prefix else f"{prefix}[{name}]"
            for i, (m, sd) in enumerate(zip(means, stds, strict=False)):
                out[f"{label}[{i}]" if len(means) > 1 else label] = (m, sd)
    return out


def _mean_std(v: tuple[float, float] | None) -> str | None:
    if v is None:
        return None
    return f"{fmt_number(v[0])} ± {fmt_number(v[1])}"


def _shifted(b: tuple[float, float] | None, n: tuple[float, float] | None) -> bool:
    """The restore detector's rule: mean moved by SHIFT_Z parent stds, or std by a factor."""
    if b is None or n is None:
        return False
    (bm, bs), (nm, ns) = b, n
    floor = 1e-6 * max(1.0, abs(bm))
    ratio = ns / bs if bs > floor else (math.inf if ns > floor else 1.0)
    return abs(nm - bm) / max(bs, floor) >= SHIFT_Z or not (1 / SHIFT_STD_RATIO < ratio < SHIFT_STD_RATIO)


def _first_seconds(run: Run) -> float | None:
    v = run.epochs[0].get("seconds") if run.epochs else None
    return float(v) if isinstance(v, int | float) else None


def _seconds(v: float | None) -> str | None:
    return None if v is None else fmt_seconds(v)


def _slower(b: float | None, n: float | None) -> bool:
    return b is not None and n is not None and b > 0 and (n / b >= TIME_RATIO or b / n >= TIME_RATIO)


def _rss(run: Run) -> list[float]:
    """The host RSS of each epoch after warm-up (compile and first traces left out)."""
    s = run.series
    return [v for v in (s.value("rss", i) for i in s.indexes()) if v == v]


def _grew_apart(base: list[float], new: list[float]) -> bool:
    """One run's RSS grew by a share of its level that the other's did not (the plots'
    MIN_REL_SPAN: less looks flat in a plot, and is not called a change here either)."""
    if not base or not new:
        return False
    level = max(base[0], new[0], 1.0)
    return abs((new[-1] - new[0]) - (base[-1] - base[0])) >= MIN_REL_SPAN * level


def sections(base: Run, new: Run) -> list[Section]:
    """The side-by-side table."""
    be, ne = _env(base), _env(new)
    fp = Section("Fingerprint")
    fp.add("python", be.get("python"), ne.get("python"))
    for pkg in ("tensorflow", "keras", "numpy"):
        fp.add(pkg, (be.get("packages") or {}).get(pkg), (ne.get("packages") or {}).get(pkg))
    gpus = [[g.get("name") for g in e.get("gpus") or [] if isinstance(g, dict)] or "none" for e in (be, ne)]
    fp.add("gpus", gpus[0], gpus[1])
    fp.add("driver", be.get("driver"), ne.get("driver"))
    fp.add("cpu_count", be.get("cpu_count"), ne.get("cpu_count"))
    fp.add("hostname", be.get("hostname"), ne.get("hostname"))

    bf, nf = _fit(base), _fit(new)
    tr = Section("Training")
    models = [
        f"{(f.get('model') or {}).get('class', '?')} ({(f.get('model') or {}).get('params', '?')} params)"
        if f.get("model")
        else None
        for f in (bf, nf)
    ]
    tr.add("model", models[0], models[1])
    tr.add("optimizer", (bf.get("optimizer") or {}).get("class"), (nf.get("optimizer") or {}).get("class"))
    tr.add("learning rate", _lr(base), _lr(new))
    tr.add("batch size", bf.get("batch_size"), nf.get("batch_size"))
    tr.add("loss", bf.get("loss"), nf.get("loss"))
    tr.add("input", (bf.get("input") or {}).get("kind"), (nf.get("input") or {}).get("kind"))
    tr.add("steps per epoch", bf.get("steps_per_epoch"), nf.get("steps_per_epoch"))

    inputs = Section("Input statistics (first batches: mean ± std)")
    bx, nx = _features(base), _features(new)
    names = sorted(set(bx) | set(nx), key=lambda n: (not _shifted(bx.get(n), nx.get(n)), natural_key(n)))
    for name in names[:MAX_FEATURES_SHOWN]:
        b, n = bx.get(name), nx.get(name)
        inputs.add(name, _mean_std(b), _mean_std(n), _shifted(b, n))
    if len(names) > MAX_FEATURES_SHOWN:
        inputs.add("...", f"{len(bx)} features", f"{len(nx)} features", len(bx) != len(nx))

    times = Section("Epoch time")
    times.add("epochs", len(base.epochs), len(new.epochs), False)
    bm, nm = (median(s) if s else None for s in (_steady_seconds(base), _steady_seconds(new)))
    times.add("median (after warm-up)", _seconds(bm), _seconds(nm), _slower(bm, nm))
    first_b, first_n = _first_seconds(base), _first_seconds(new)
    times.add("first epoch", _seconds(first_b), _seconds(first_n), _slower(first_b, first_n))

    memory = Section("Memory and retraces (after warm-up)")
    rb, rn = _rss(base), _rss(new)
    memory.add("RSS first", fmt_bytes(rb[0]) if rb else None, fmt_bytes(rn[0]) if rn else None, False)
    memory.add(
        "RSS last", fmt_bytes(rb[-1]) if rb else None, fmt_bytes(rn[-1]) if rn else None, _grew_apart(rb, rn)
    )
    memory.add("RSS trend", sparkline(rb, 24) or None, sparkline(rn, 24) or None, False)
    tb, tn = base.retraces.after_warmup, new.retraces.after_warmup
    memory.add("new tf.function traces", tb, tn, tb != tn and max(tb, tn) > 0)

    curve = Section("Loss curve")
    bl, nl = _losses(base), _losses(new)
    curve.add("first", bl[0] if bl else None, nl[0] if nl else None, False)
    curve.add("last", bl[-1] if bl else None, nl[-1] if nl else None, False)
    curve.add("min", min(bl) if bl else None, min(nl) if nl else None, False)
    curve.add("curve", sparkline(bl, 24) or None, sparkline(nl, 24) or None, False)
    return [s for s in (fp, tr, inputs, times, memory, curve) if s.rows]


def relation(base: Run, new: Run) -> Record:
    """How the two runs are related through their saves and restores."""
    lineage = build_lineage([base, new])
    for child, parent, word in ((new, base, "NEW resumed from BASE"), (base, new, "BASE resumed from NEW")):
        for link in lineage.links_of(child.run_id):
            if link.parent != parent.run_id:
                continue
            what = os.path.basename(str(link.restore.get("path", "?")))
            if link.match == MATCH_SHA256:
                step = link.save.get("iterations")
                at = f", saved at step {step}" if isinstance(step, int) else ""
                return {"relation": "resumed", "text": f"{word} (restored {what}{at})", "child": child.run_id}
            return {"relation": "modified", "text": f"{word}'s path, but the file had changed ({what})"}
    return {"relation": "unrelated", "text": "unrelated: no restore of one matches a save of the other"}


def _only_in(run: Run, other: Run) -> list[Finding]:
    """The run's own findings (report's: the replay's and its trace's) that the other run
    does not have: what NEW does that BASE did not (a leak, a retrace storm)."""
    analysis, recorded = run_findings(run)
    theirs = {f.key for part in run_findings(other) for f in part}
    return [f for f in [*analysis, *recorded] if f.key not in theirs]


def compare(base: Run, new: Run) -> Record:
    """Everything `compare` says, as plain data (the JSON output)."""
    rel = relation(base, new)
    reverse = rel.get("child") == base.run_id  # BASE is the one that resumed
    found = [
        record_fields(f) for f in (compare_findings(new, base) if reverse else compare_findings(base, new))
    ]
    found += [{**record_fields(f), "only_in": "NEW"} for f in _only_in(new, base)]
    found = sorted(found, key=lambda f: (-severity_rank(f["severity"]), f["kind"]))
    secs = sections(base, new)
    changes = [
        f"{s.title.split(' (')[0]}: {r.label} {r.base} -> {r.new}" for s in secs for r in s.rows if r.changed
    ]
    return {
        "base": {"run_id": base.run_id, "path": str(base.path) if base.path else None},
        "new": {"run_id": new.run_id, "path": str(new.path) if new.path else None},
        "relation": rel,
        "sections": [
            {
                "title": s.title,
                "rows": [
                    {"label": r.label, "base": r.base, "new": r.new, "changed": r.changed} for r in s.rows
                ],
            }
            for s in secs
        ],
        "changes": changes,
        "findings": [{**f, "evidence": clean(f.get("evidence", {}))} for f in found],
    }


# -- rendering -------------------------------------------------------------------------


def render_text(result: Record, out: IO[str]) -> None:
    base, new = result["base"]["run_id"], result["new"]["run_id"]
    out.write(f"BASE  {base}\nNEW   {new}\n{result['relation']['text']}\n")
    width = max([len(r["label"]) for s in result["sections"] for r in s["rows"]] + [10]) + 2
    col = max([len(r["base"]) for s in result["sections"] for r in s["rows"]] + [12]) + 2
    col = min(col, 40)
    for s in result["sections"]:
        out.write(f"\n{s['title']}\n")
        out.write(f"  {'':<{width}}{'BASE':<{col}}NEW\n")
        for r in s["rows"]:
            mark = "*" if r["changed"] else " "
            out.write(f"{mark} {r['label']:<{width}}{r['base']:<{col}}{r['new']}\n")
    out.write("\nWhat changed\n")
    for line in result["changes"] or ["nothing in the rows above"]:
        out.write(f"  - {line}\n")
    out.write("\nFindings this implies\n")
    if not result["findings"]:
        out.write("  none\n")
    for f in result["findings"]:
        only = " (NEW only)" if f.get("only_in") else ""
        out.write(f"  [{f['severity']}] {f['kind']}{only}: {f['title']}\n")
        if f.get("hint"):
            out.write(f"      fix: {f['hint']}\n")


def _load(arg: str, role: str) -> Run:
    path = Path(arg)
    if path.is_dir():
        files, _problems = find_traces([path])
        if len(files) != 1:
            raise UsageError(f"{role} {arg}: a directory must hold exactly one trace, found {len(files)}")
        path = files[0]
    elif not path.exists():
        raise UsageError(f"{role} {arg}: {missing(path)}")
    try:
        return load_run(path)
    except TraceError as exc:
        raise UsageError(f"{role}: {exc}") from None


class CompareCommand:
    name = "compare"
    help = "Two runs side by side: what changed between them and what it implies."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("base", metavar="BASE", help="trace file (or a directory with one trace)")
        parser.add_argument("new", metavar="NEW", help="trace file (or a directory with one trace)")
        parser.add_argument("--format", choices=("text", "json"), default="text")
        parser.add_argument("--output", "-o", metavar="FILE", help="write here instead of stdout")

    def run(self, args: argparse.Namespace) -> int:
        base, new = _load(args.base, "BASE"), _load(args.new, "NEW")
        result = compare(base, new)
        with ExitStack() as stack:
            out: IO[str] = sys.stdout
            if args.output:  # escaped as stdout is (cli/__init__.py): a file is read on a terminal too
                out = cast(IO[str], SafeStream(stack.enter_context(open(args.output, "w", encoding="utf-8"))))
            if args.format == "json":
                json.dump(result, out, indent=2, default=str)
                out.write("\n")
            else:
                render_text(escape_tree(result), out)  # every string from the traces on one line
        return 0


def natural_key(name: str) -> tuple[Any, ...]:
    """Numbers inside names compare as numbers: x[2] before x[10]."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


COMMAND = CompareCommand()
