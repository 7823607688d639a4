"""The `top` screen as lines of styled text, for a terminal of any size.

Pure: runs and a size in, lines out, so layout is tested without a terminal. At 80x24
the table keeps the columns that matter most (run, state, epoch, epoch time and its
sparkline, RSS, GPU memory, retraces, findings); wider terminals get the pid, the time
since the last epoch and the loss, and longer run ids and sparklines. Below the table,
the open findings, most severe first, as many as fit. Every string from a trace is
stripped of control characters: a run id must not be able to drive the terminal.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from epochwatch.analysis.findings import RANK, severity_rank
from epochwatch.analysis.ledger import SHORT_SEVERITY, counts_text
from epochwatch.analysis.units import fmt_bytes, fmt_number, fmt_seconds
from epochwatch.report.sparkline import BLOCKS, sparkline
from epochwatch.top.model import RunState

MIN_WIDTH, MIN_HEIGHT = 40, 6
ASCII_BLOCKS = "_.-:=+*#"

Segment = tuple[str, str]  # (text, style); styles: header, error, title, dim, critical, warning, info


@dataclass
class Line:
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.segments)


def clean(text: object) -> str:
    """Printable characters only (escape sequences from a trace become '?')."""
    s = str(text)
    return s if s.isprintable() else "".join(c if c.isprintable() else "?" for c in s)


def clip(text: str, width: int, middle: bool = False, ellipsis: str = "…") -> str:
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width <= len(ellipsis):
        return text[:width]
    if middle:
        head = (width - len(ellipsis) + 1) // 2
        tail = width - len(ellipsis) - head
        return text[:head] + ellipsis + (text[-tail:] if tail else "")
    return text[: width - len(ellipsis)] + ellipsis


@dataclass(frozen=True)
class Column:
    name: str
    width: int
    priority: int  # dropped first when the terminal is narrow: the highest
    right: bool
    cell: Callable[[RunState, int, float, bool], str]
    grow: int = 0  # extra width it may take on a wide terminal


def _epoch(r: RunState, _w: int, _now: float, _a: bool) -> str:
    if r.epoch is None:
        return "-"
    return f"{r.epoch + 1}/{r.planned}" if r.planned else str(r.epoch)


def _time(r: RunState, _w: int, _now: float, _a: bool) -> str:
    return fmt_seconds(r.epoch_seconds[-1]) if r.epoch_seconds else "-"


def _trend(r: RunState, w: int, _now: float, ascii_only: bool) -> str:
    values = list(r.epoch_seconds)[-w:]
    line = sparkline(values, w) if len(values) >= 2 else ""
    return line.translate(str.maketrans(BLOCKS, ASCII_BLOCKS)) if ascii_only else line


def _bytes(v: float | None) -> str:
    return "-" if v is None else fmt_bytes(v)


def _findings(r: RunState, w: int, _now: float, _a: bool) -> str:
    """Counts per severity, as the console and the report count them: '1 warn 1 info', or
    '1w 1i' where that does not fit."""
    counts = r.findings.counts()
    text = counts_text(counts, short=True)
    if len(text) <= w:
        return text
    return " ".join(f"{n}{severity[0]}" for severity, n in reversed(list(counts.items())) if n)


def _retraces(r: RunState, _w: int, _now: float, _a: bool) -> str:
    """New traces after warm-up; '57+' when only the end of a large trace was read."""
    return f"{r.retraces}+" if r.partial and r.retraces_said is None else str(r.retraces)


def _allreduce(r: RunState, _w: int, _now: float, _a: bool) -> str:
    """The newest epoch's share spent in the all-reduce step: of several workers of one job on
    this host, the one with the lowest share is the one the others wait for."""
    return "-" if r.collective_share is None else f"{100 * r.collective_share:.0f}%"


def _age(r: RunState, _w: int, now: float, _a: bool) -> str:
    if r.last_epoch_t is None:
        return "-"
    secs = max(0.0, now - r.last_epoch_t)
    if secs < 120:
        return f"{secs:.0f}s"
    if secs < 7200:
        return f"{secs / 60:.0f}m"
    return f"{secs / 3600:.0f}h"


STATES = {
    "running": "run",
    "done": "done",
    "raised": "err",
    "interrupted": "int",
    "detached": "det",
    "ended": "end",
}


def _state(r: RunState, _w: int, _now: float, _a: bool) -> str:
    """Four letters: run, done, err (raised), int (interrupted), gone (vanished or killed), det."""
    return STATES.get(r.state, "gone" if r.state in ("gone", "vanished") else r.state[:4])


COLUMNS = (
    Column("RUN", 12, 0, False, lambda r, w, n, a: clip(clean(r.run_id), w, middle=True), grow=30),
    Column("ST", 4, 1, False, _state),
    Column("PID", 7, 4, True, lambda r, w, n, a: "-" if r.pid is None else str(r.pid)),
    Column("EPOCH", 7, 0, True, _epoch),
    Column("TIME", 6, 1, True, _time),
    Column("TREND", 7, 2, False, _trend, grow=33),
    Column("AGO", 4, 5, True, _age),
    Column("RSS", 8, 1, True, lambda r, w, n, a: _bytes(r.rss)),
    Column("GPU", 8, 3, True, lambda r, w, n, a: _bytes(r.gpu)),
    Column("RETR", 4, 3, True, _retraces),
    Column("LOSS", 8, 7, True, lambda r, w, n, a: "-" if r.loss is None else fmt_number(r.loss)),
    Column("WORKER", 8, 6, False, lambda r, w, n, a: r.worker or "-"),
    Column("ALLRED", 6, 6, True, _allreduce),
    Column("FINDINGS", 8, 1, False, _findings, grow=6),
)


def layout(width: int, run_width: int = 24) -> list[tuple[Column, int]]:
    """The columns that fit in `width`, each with its width.

    Narrow terminals drop columns by priority; wide ones give the spare room to the run
    id (up to `run_width`, the longest one shown) and then to the sparkline.
    """
    cols = list(COLUMNS)
    while sum(c.width for c in cols) + len(cols) - 1 > width:
        drop = max(cols, key=lambda c: (c.priority, COLUMNS.index(c)))
        if drop.priority == 0:
            break
        cols.remove(drop)
    spare = width - (sum(c.width for c in cols) + len(cols) - 1)
    widths = {c.name: c.width for c in cols}
    run = COLUMNS[0]  # priority 0: always shown
    extra = max(0, min(spare, run.grow, run_width - run.width))
    widths[run.name] += extra
    spare -= extra
    for c in cols:
        if c.name != "RUN" and c.grow and spare > 0:
            extra = min(spare, c.grow)
            widths[c.name] += extra
            spare -= extra
    return [(c, widths[c.name]) for c in cols]


def order(runs: Sequence[RunState]) -> list[RunState]:
    """Running first, then by the newest activity."""
    return sorted(runs, key=lambda r: (not r.running, -(r.last_seen or r.started or 0.0), r.run_id))


def _row(r: RunState, cols: list[tuple[Column, int]], now: float, ascii_only: bool) -> Line:
    line = Line()
    base = "" if r.running else "dim"
    for i, (c, w) in enumerate(cols):
        text = clip(clean(c.cell(r, w, now, ascii_only)), w)
        text = text.rjust(w) if c.right else (text if i == len(cols) - 1 else text.ljust(w))
        style = base
        if c.name == "FINDINGS" and r.findings:
            worst = max(r.findings.findings(), key=lambda f: severity_rank(f.severity))
            style = worst.severity if worst.severity in RANK else base
        line.segments.append((text, style))
        if i < len(cols) - 1:
            line.segments.append((" ", base))
    return line


def render(
    runs: Sequence[RunState],
    width: int,
    height: int,
    *,
    source: str,
    error: str | None = None,
    interval: float = 1.0,
    now: float | None = None,
    ascii_only: bool = False,
    footer: bool = True,
) -> list[Line]:
    """The whole screen, at most `height` lines of at most `width` characters.

    Without `footer` (a printed snapshot), no key help and no padding to `height`.
    """
    ell = "~" if ascii_only else "…"
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        msg = (
            f"terminal too small ({width}x{height}); epochwatch top needs {MIN_WIDTH}x{MIN_HEIGHT} · q quits"
        )
        return [Line([(clip(msg, max(1, width - 1), ellipsis=ell), "error")])]
    now = time.time() if now is None else now
    runs = order(runs)
    running = sum(1 for r in runs if r.running)
    clock = time.strftime("%H:%M:%S", time.localtime(now))
    head = f"epochwatch top · {clean(source)} · {len(runs)} run{'s' if len(runs) != 1 else ''}, {running} running"
    head = clip(head, width - len(clock) - 1, ellipsis=ell)
    lines = [Line([(head.ljust(width - len(clock)) + clock, "header")])]
    if error:
        lines.append(Line([(clip(clean(error), width, ellipsis=ell), "error")]))
    keys = Line([(clip(f"q quit · refresh every {interval:g} s", width, ellipsis=ell), "dim")])
    cols = layout(width, max((len(clean(r.run_id)) for r in runs), default=12))
    header = " ".join(c.name.rjust(w) if c.right else c.name.ljust(w) for c, w in cols)
    lines.append(Line([(clip(header.rstrip(), width), "title")]))
    room = height - len(lines) - (1 if footer else 0)
    findings = _finding_lines(runs, width, ell)
    if not runs:
        lines.append(Line([("no runs yet", "dim")]))
        room -= 1
    # Rows first, but leave the findings at least a few lines when there are any.
    rows_room = max(1, room - (min(len(findings), 4) + 1 if findings else 0))
    shown = runs[:rows_room]
    for r in shown:
        lines.append(_row(r, cols, now, ascii_only))
    if len(runs) > len(shown):
        more = f"… {len(runs) - len(shown) + 1} more runs (a taller terminal shows them)"
        lines[-1] = Line([(clip(more, width, ellipsis=ell), "dim")])
    left = height - len(lines) - (1 if footer else 0)
    if findings and left >= 2:
        lines.append(Line([(clip(f"open findings ({len(findings)})", width), "title")]))
        lines.extend(findings[: left - 1])
    if footer:
        while len(lines) < height - 1:
            lines.append(Line())
        lines.append(keys)
    return lines[:height]


def _finding_lines(runs: Sequence[RunState], width: int, ell: str) -> list[Line]:
    items = []
    for r in runs:
        for f in r.findings.open():  # a recovered episode is counted, but no longer open
            items.append((not r.running, -severity_rank(f.severity), r.run_id, f))
    items.sort(key=lambda t: t[:3])
    out = []
    for _, _, run_id, f in items:
        sev = SHORT_SEVERITY.get(f.severity, f.severity[:4])
        text = f"{sev:<4} {clip(clean(run_id), 24, middle=True, ellipsis=ell)}  {clean(f.kind)}: {clean(f.title)}"
        out.append(Line([(clip(text, width, ellipsis=ell), f.severity if f.severity in RANK else "")]))
    return out


def terminal_size(default: tuple[int, int] = (100, 40)) -> tuple[int, int]:
    """$COLUMNS/$LINES, else the terminal's size, else `default` (a pipe)."""
    size = shutil.get_terminal_size(default)
    return size.columns, size.lines
