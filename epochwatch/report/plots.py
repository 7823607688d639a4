"""Line charts as inline SVG, drawn from plain figure dicts (see figures.py).

Why hand-written SVG and not a charting library: the report must be one file that opens
offline, and a chart here is a few paths, a grid and some labels. Inlined SVG is a few
kilobytes per chart, crisp at any zoom and in print, needs no JavaScript (the page can
forbid scripts outright), and is plain text that tests can read. A JS charting library
would add 200 KB-1 MB to every report and a runtime that can fail.

A figure dict:

    {"title": str, "unit": "seconds"|"bytes"|"count"|"number", "log": bool,
     "series": [{"name", "x": [..], "y": [..], "style": "line"|"bars"|"dots", "cls": "s0"}],
     "lines":  [{"x0", "y0", "x1", "y1", "label", "cls": "trend"|"projection"}],
     "hlines": [{"y", "label", "cls": "limit"}],     # drawn only when inside the y range
     "vlines": [{"x", "label", "cls": "restore"|"finding"}],
     "above":  [{"x", "y", "label"}],                # points clipped at the top, e.g. warm-up
     "x_max": number, "y_min": number, "y_max": number, "x_name": "epoch"}

Absent values are None (JSON null) and break a line. Every string is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from epochwatch.analysis.units import fmt_number

WIDTH, HEIGHT = 560, 230
LEFT, RIGHT, BOTTOM = 48, 14, 30  # LEFT: the least; it grows with the widest y label
LABEL_CHAR = 6.2  # width of one character of an 11px label, for the left margin
LEGEND_ROW = 16
MAX_POINTS = 1000
# A y range spans at least this share of its level: changes under ~10% look flat, as they are.
MIN_REL_SPAN = 0.2

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def decimate(
    xs: Sequence[float], ys: Sequence[float | None], max_points: int = MAX_POINTS
) -> tuple[list[float], list[float | None]]:
    """At most about `max_points` points, keeping each bucket's minimum and maximum.

    Min/max decimation keeps spikes and the envelope of a sawtooth visible, which an
    average or a stride would hide; the points stay in x order. Gaps (None) survive as one
    None per bucket that had any, so a line still breaks where data is missing.
    """
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    buckets = max(1, max_points // 2)
    out_x: list[float] = []
    out_y: list[float | None] = []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        present = [(i, ys[i]) for i in range(lo, hi) if _ok(ys[i])]
        if len(present) < hi - lo:
            out_x.append(xs[lo])
            out_y.append(None)
        if not present:
            continue
        i_min = min(present, key=lambda p: p[1])[0]  # type: ignore[arg-type,return-value]
        i_max = max(present, key=lambda p: p[1])[0]  # type: ignore[arg-type,return-value]
        for i in sorted({i_min, i_max}):
            out_x.append(xs[i])
            out_y.append(ys[i])
    return out_x, out_y


def _ok(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


# -- axis scales and labels ------------------------------------------------------------------


def nice_step(span: float, target: int = 5) -> float:
    """A 1-2-5 step that cuts `span` into about `target` intervals."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def ticks(lo: float, hi: float, unit: str) -> tuple[list[float], list[str]]:
    """Tick values (in data units) and their labels: round numbers in the unit shown."""
    top, div, name = max(abs(lo), abs(hi)), 1.0, ""
    if unit == "bytes":
        i = 0
        while top / 1024.0 ** (i + 1) >= 1 and i < len(_BYTE_UNITS) - 1:
            i += 1
        while i > 0 and nice_step((hi - lo) / 1024.0**i) < 0.01:  # a narrow range high up: finer unit
            i -= 1
        div, name = 1024.0**i, _BYTE_UNITS[i]
    elif unit == "seconds":
        div, name = (1e-6, "µs") if top < 1e-3 else (1e-3, "ms") if top < 1 else (1.0, "s")
    step = nice_step((hi - lo) / div)
    if unit == "count":
        step = max(1.0, math.ceil(step))
    first = math.ceil(lo / div / step - 1e-9) * step
    values: list[float] = []
    v = first
    while v <= hi / div + step * 1e-9 and len(values) < 20:
        values.append(v)
        v += step
    labels = [f"{_trim(v)} {name}".strip() for v in values]
    return [v * div for v in values], labels


def _trim(v: float) -> str:
    text = f"{v:.6g}"
    return "0" if text in ("-0", "0") else text


def _xlabel(v: float) -> str:
    """Epoch numbers: 25, 1500, 20k, 1.5M (long labels would run into each other)."""
    if abs(v) >= 1e6:
        return f"{_trim(v / 1e6)}M"
    if abs(v) >= 1e4:
        return f"{_trim(v / 1e3)}k"
    return _trim(v)


# -- drawing -------------------------------------------------------------------------------------


class _Frame:
    """Maps data coordinates to the SVG plot area."""

    def __init__(
        self, x0: float, x1: float, y0: float, y1: float, log: bool, top: float, left: float
    ) -> None:
        self.top, self.left = top, left
        self.x0, self.x1 = x0, (x1 if x1 > x0 else x0 + 1)
        self.log = log
        if log:
            y0, y1 = math.log10(y0), math.log10(y1)
        self.y0, self.y1 = y0, (y1 if y1 > y0 else y0 + 1)
        self.w = WIDTH - left - RIGHT
        self.h = HEIGHT - top - BOTTOM

    def x(self, v: float) -> float:
        return self.left + (v - self.x0) / (self.x1 - self.x0) * self.w

    def y(self, v: float) -> float:
        if self.log:
            v = math.log10(v) if v > 0 else self.y0
        return self.top + self.h - (v - self.y0) / (self.y1 - self.y0) * self.h

    def inside_y(self, v: float) -> bool:
        if self.log:
            return v > 0 and self.y0 <= math.log10(v) <= self.y1
        return self.y0 <= v <= self.y1


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _path(frame: _Frame, xs: Sequence[float], ys: Sequence[float | None]) -> str:
    parts: list[str] = []
    pen = False
    for x, y in zip(xs, ys, strict=False):
        if not _ok(y) or not _ok(x) or (frame.log and y <= 0):  # type: ignore[operator]
            pen = False
            continue
        parts.append(f"{'L' if pen else 'M'}{_f(frame.x(x))} {_f(frame.y(y))}")  # type: ignore[arg-type]
        pen = True
    return "".join(parts)


def _bounds(fig: Mapping[str, Any]) -> tuple[float, float, float, float]:
    xs: list[float] = []
    ys: list[float] = []
    for s in fig.get("series", []):
        for x, y in zip(s.get("x", []), s.get("y", []), strict=False):
            if _ok(x) and _ok(y):
                xs.append(x)
                ys.append(y)
    for ln in fig.get("lines", []):
        xs += [v for v in (ln.get("x0"), ln.get("x1")) if _ok(v)]
    xs += [vl["x"] for vl in fig.get("vlines", []) if _ok(vl.get("x"))]
    if not xs:
        return 0.0, 1.0, 0.0, 1.0
    x0, x1 = min(xs), max(xs)
    if _ok(fig.get("x_max")):
        x1 = max(x1, fig["x_max"])
    lo = min(ys) if ys else 0.0
    hi = max(ys) if ys else 1.0
    for ln in fig.get("lines", []):
        hi = max([hi] + [v for v in (ln.get("y0"), ln.get("y1")) if _ok(v)])
    if _ok(fig.get("y_max")):
        hi = fig["y_max"]
    hi = max([hi] + [hl["y"] for hl in fig.get("hlines", []) if hl.get("fit") and _ok(hl.get("y"))])
    if _ok(fig.get("y_min")):
        lo = min(lo, fig["y_min"])
    return x0, x1, lo, hi


def min_span(lo: float, hi: float) -> tuple[float, float]:
    """Widen a zoomed-in y range to at least MIN_REL_SPAN of its level, around its middle.

    Autoscaling alone stretches 541.0-541.7 MiB, or a +68 B change of a 10 MB directory,
    over the whole panel, and a flat series looks like a leak. A range that starts at zero
    is left alone; a widened one never goes below zero when the data do not.
    """
    level = max(abs(lo), abs(hi))
    need = MIN_REL_SPAN * level
    if lo == 0.0 or hi - lo >= need:
        return lo, hi
    mid = (lo + hi) / 2
    new_lo, new_hi = mid - need / 2, mid + need / 2
    if lo >= 0 > new_lo:
        new_lo, new_hi = 0.0, max(hi, need)
    return new_lo, new_hi


def svg(fig: Mapping[str, Any], uid: str = "p") -> str:
    """One figure as an <svg> element (a string), sized by its viewBox.

    The title belongs to the page (a caption); the SVG carries it as <title> for screen
    readers, and its legend on top, wrapped into as many rows as it needs. `uid` makes the
    clip path's id unique within the page.
    """
    legend, rows = _legend(fig)
    top = 8 + rows * LEGEND_ROW + 8
    x0, x1, lo, hi = _bounds(fig)
    log = bool(fig.get("log")) and lo > 0
    lo, hi, tick_v, tick_l = _y_axis(lo, hi, log, str(fig.get("unit", "number")))
    if any(s.get("style") == "bars" for s in fig.get("series", [])):
        x0, x1 = x0 - 0.6, x1 + 0.6  # room for the first and last bar
    left = max(LEFT, 10 + LABEL_CHAR * max((len(label) for label in tick_l), default=0))
    frame = _Frame(x0, x1, lo, hi, log, top, left)
    clip = escape(f"clip-{uid}")
    out = [
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg" role="img">',
        f"<title>{escape(str(fig.get('title', '')))}</title>",
        f'<clipPath id="{clip}"><rect x="{_f(left)}" y="{_f(top - 2)}" width="{_f(frame.w)}" height="{_f(frame.h + 2)}"/></clipPath>',
        legend,
        *_grid(fig, frame, tick_v, tick_l),
        *_marks(fig, frame),
        f'<g clip-path="url(#{clip})">',
        *(_series(frame, s, escape(str(s.get("cls", f"s{i}")))) for i, s in enumerate(fig.get("series", []))),
    ]
    for ln in fig.get("lines", []):
        if not all(_ok(ln.get(k)) for k in ("x0", "y0", "x1", "y1")):
            continue
        cls = escape(str(ln.get("cls", "trend")))
        out.append(
            f'<line class="{cls}" x1="{_f(frame.x(ln["x0"]))}" y1="{_f(frame.y(ln["y0"]))}"'
            f' x2="{_f(frame.x(ln["x1"]))}" y2="{_f(frame.y(ln["y1"]))}"/>'
        )
    out.append("</g>")
    for p in fig.get("above", []):
        if _ok(p.get("x")):
            x = frame.x(p["x"])
            out.append(
                f'<path class="clip" d="M{_f(x - 4)} {_f(top + 7)}L{_f(x)} {_f(top)}L{_f(x + 4)} {_f(top + 7)}Z"/>'
                f'<text class="clip-lab" x="{_f(x + 6)}" y="{_f(top + 8)}">{escape(str(p.get("label", "")))}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def _y_axis(lo: float, hi: float, log: bool, unit: str) -> tuple[float, float, list[float], list[str]]:
    """The y range drawn and its ticks (values, labels): padded, from zero unless the data
    sit far above it, never zoomed in past MIN_REL_SPAN; decades on a log axis."""
    if log:
        start, stop = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        tick_v = [10.0**e for e in range(start, stop + 1)]
        return tick_v[0], tick_v[-1], tick_v, [fmt_number(v) for v in tick_v]
    if hi == lo:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = (lo - pad if lo - pad >= 0 or lo < 0 else 0.0), hi + pad
    else:
        pad = (hi - lo) * 0.06
        # Start at zero unless the data sit far above it (then zoom in on them).
        lo = lo - pad if lo < 0 or lo > (hi - lo) * 1.5 else 0.0
        hi = hi + pad
    lo, hi = min_span(lo, hi)
    tick_v, tick_l = ticks(lo, hi, unit)
    return lo, hi, tick_v, tick_l


def _grid(fig: Mapping[str, Any], frame: _Frame, tick_v: list[float], tick_l: list[str]) -> list[str]:
    """The grid: y ticks with their labels, x ticks, the x axis and its name."""
    left, bottom = frame.left, frame.top + frame.h
    out = ['<g class="grid">']
    for v, label in zip(tick_v, tick_l, strict=True):
        if not frame.inside_y(v):
            continue
        ty = _f(frame.y(v))
        out.append(f'<line x1="{_f(left)}" x2="{WIDTH - RIGHT}" y1="{ty}" y2="{ty}"/>')
        out.append(f'<text class="ylab" x="{_f(left - 6)}" y="{ty}">{escape(label)}</text>')
    xstep = max(1.0, nice_step(frame.x1 - frame.x0, 6))
    v = math.ceil(frame.x0 / xstep - 1e-9) * xstep
    while v <= frame.x1 + 1e-9:
        tx = _f(frame.x(v))
        out.append(f'<line class="xt" x1="{tx}" x2="{tx}" y1="{_f(bottom)}" y2="{_f(bottom + 4)}"/>')
        out.append(f'<text class="xlab" x="{tx}" y="{_f(bottom + 16)}">{_xlabel(v)}</text>')
        v += xstep
    out.append(
        f'<line class="axis" x1="{_f(left)}" x2="{WIDTH - RIGHT}" y1="{_f(bottom)}" y2="{_f(bottom)}"/>'
    )
    xname = escape(str(fig.get("x_name", "epoch")))
    out.append(f'<text class="xname" x="{WIDTH - RIGHT}" y="{HEIGHT - 2}">{xname}</text>')
    out.append("</g>")
    return out


def _marks(fig: Mapping[str, Any], frame: _Frame) -> list[str]:
    """Horizontal lines (limits, fitted levels) and vertical markers (events), labelled
    where a label fits without overlapping another."""
    left, top, bottom = frame.left, frame.top, frame.top + frame.h
    out: list[str] = []
    labels = _Labels(left, top, bottom)
    for p in fig.get("above", []):  # warm-up marks sit at the top edge: reserve their room first
        if _ok(p.get("x")):
            labels.reserve(frame.x(p["x"]) + 6, top + 8, len(str(p.get("label", ""))))
    for hl in sorted(fig.get("hlines", []), key=lambda h: -h["y"] if _ok(h.get("y")) else 0.0):
        if _ok(hl.get("y")) and frame.inside_y(hl["y"]):
            y = frame.y(hl["y"])
            cls = escape(str(hl.get("cls", "limit")))
            out.append(
                f'<line class="{cls}" x1="{_f(left)}" x2="{WIDTH - RIGHT}" y1="{_f(y)}" y2="{_f(y)}"/>'
            )
            text = str(hl.get("label", ""))
            ly = labels.place_right(WIDTH - RIGHT - 4, y - 4, len(text))
            if ly is not None:
                out.append(
                    f'<text class="hlab {cls}-lab" x="{WIDTH - RIGHT - 4}" y="{_f(ly)}">{escape(text)}</text>'
                )
    for vl in fig.get("vlines", []):
        if not _ok(vl.get("x")):
            continue
        x = frame.x(vl["x"])
        cls = escape(str(vl.get("cls", "marker")))
        label = escape(str(vl.get("label", "")))
        out.append(
            f'<line class="{cls}" x1="{_f(x)}" x2="{_f(x)}" y1="{_f(top)}" y2="{_f(bottom)}">'
            f"<title>{label}</title></line>"
        )
        if vl.get("short"):
            short = str(vl["short"])
            spot = labels.place_lane(x, int(vl.get("lane", 0)), len(short))
            if spot is not None:  # no free lane: the line keeps its tooltip, the text is left out
                lx, lane_y, anchor = spot
                out.append(
                    f'<text class="vlab {cls}-lab" x="{_f(lx)}" y="{_f(lane_y)}"{anchor}>'
                    f"{escape(short)}<title>{label}</title></text>"
                )
    return out


class _Labels:
    """Places text labels so that none overlaps another (boxes from LABEL_CHAR per character)."""

    LANE = 12.0

    def __init__(self, left: float, top: float, bottom: float) -> None:
        self.left, self.top, self.bottom = left, top, bottom
        self.boxes: list[tuple[float, float, float, float]] = []  # x0, y0, x1, y1

    def _free(self, box: tuple[float, float, float, float]) -> bool:
        x0, y0, x1, y1 = box
        return all(x1 <= b[0] or x0 >= b[2] or y1 <= b[1] or y0 >= b[3] for b in self.boxes)

    def reserve(self, x: float, baseline: float, chars: int) -> None:
        self.boxes.append((x, baseline - 10, x + LABEL_CHAR * chars, baseline + 2))

    def place_right(self, x_end: float, baseline: float, chars: int) -> float | None:
        """A right-aligned label at or below `baseline`; None if no room is left."""
        width = LABEL_CHAR * chars
        y = baseline
        while y <= self.bottom:
            box = (x_end - width, y - 10, x_end, y + 2)
            if self._free(box):
                self.boxes.append(box)
                return y
            y += self.LANE
        return None

    def place_lane(self, x: float, lane: int, chars: int) -> tuple[float, float, str] | None:
        """Beside a vertical line, in the first free lane from `lane` down: (x, y, anchor)."""
        width = LABEL_CHAR * chars + 3
        for n in range(lane, int((self.bottom - self.top - 10) // self.LANE)):
            y = self.top + 10 + self.LANE * n
            right = x + 3 + width <= WIDTH - RIGHT
            x0 = x + 3 if right else x - 3 - width
            box = (x0, y - 10, x0 + width, y + 2)
            if self._free(box):
                self.boxes.append(box)
                return (x + 3, y, "") if right else (x - 3, y, ' text-anchor="end"')
        return None


def _series(frame: _Frame, s: Mapping[str, Any], cls: str) -> str:
    style = s.get("style", "line")
    xs, ys = s.get("x", []), s.get("y", [])
    if style == "bars":
        return _bars(frame, xs, ys, cls)
    pts = [(x, y) for x, y in zip(xs, ys, strict=False) if _ok(x) and _ok(y) and frame.inside_y(y)]
    dots = [f'<circle class="pt {cls}" cx="{_f(frame.x(x))}" cy="{_f(frame.y(y))}" r="2"/>' for x, y in pts]
    if style == "dots":
        return "".join(dots)
    d = _path(frame, xs, ys)
    line = f'<path class="line {cls}" d="{d}"/>' if d else ""
    return line + ("".join(dots) if len(pts) <= 60 else "")  # few points: mark each one


def _bars(frame: _Frame, xs: Sequence[float], ys: Sequence[float | None], cls: str) -> str:
    pts = [(x, float(y)) for x, y in zip(xs, ys, strict=False) if _ok(x) and _ok(y) and y > 0]  # type: ignore[arg-type,operator]
    if not pts:
        return ""
    width = max(1.0, min(12.0, frame.w / max(1.0, frame.x1 - frame.x0 + 1) * 0.7))
    base = frame.y(max(frame.y0, 0.0))
    parts = []
    for x, y in pts:
        top = frame.y(min(y, frame.y1))
        parts.append(f"M{_f(frame.x(x) - width / 2)} {_f(base)}h{_f(width)}V{_f(top)}h{_f(-width)}Z")
    return f'<path class="bar {cls}" d="{"".join(parts)}"/>'


CHAR_WIDTH = 6.6  # of the legend's 11px font, for wrapping


def _legend(fig: Mapping[str, Any]) -> tuple[str, int]:
    """The legend as SVG and how many rows it takes."""
    items: list[tuple[str, str]] = []
    for i, s in enumerate(fig.get("series", [])):
        if s.get("name"):
            items.append((str(s.get("cls", f"s{i}")), str(s["name"])))
    for ln in fig.get("lines", []):
        if ln.get("label"):
            items.append((str(ln.get("cls", "trend")), str(ln["label"])))
    for hl in fig.get("hlines", []):
        if hl.get("legend"):
            items.append((str(hl.get("cls", "limit")), str(hl["legend"])))
    if not items:
        return "", 0
    out = ['<g class="legend">']
    x, row = float(LEFT), 0
    for cls, name in items:
        text = name if len(name) <= 70 else name[:69] + "…"
        w = CHAR_WIDTH * len(text) + 30
        if x > LEFT and x + w > WIDTH - RIGHT:
            x, row = float(LEFT), row + 1
        y = 8 + row * LEGEND_ROW + 8
        out.append(
            f'<line class="key {escape(cls)}" x1="{_f(x)}" x2="{_f(x + 16)}" y1="{y - 4}" y2="{y - 4}"/>'
            f'<text x="{_f(x + 20)}" y="{y}">{escape(text)}</text>'
        )
        x += w
    out.append("</g>")
    return "".join(out), row + 1
