"""The curses loop of `epochwatch top`: draw, wait for a key or the next refresh, repeat.

curses (standard library) rather than hand-made ANSI: it knows the terminal from
terminfo, switches to the alternate screen and back, redraws only what changed, and
reports resizes. Keys: q (or Q, Esc) quits; any other key refreshes now. Nothing here
raises on a tiny or resized terminal: drawing past the edge is clipped, and a screen too
small for the table says so in one line.
"""

from __future__ import annotations

import contextlib
import curses
import locale
import os
import sys
import time
from typing import Any, Protocol

from epochwatch.top import layout
from epochwatch.top.model import RunState

QUIT_KEYS = {ord("q"), ord("Q"), 27}
TICK_MS = 100  # how often keys are looked at


class Source(Protocol):
    error: str | None

    @property
    def label(self) -> str: ...

    def poll(self) -> list[RunState]: ...


def unicode_ok() -> bool:
    return "utf" in (locale.getpreferredencoding(False) or "").lower()


def run(source: Source, interval: float) -> int:
    locale.setlocale(locale.LC_ALL, "")
    result: int = curses.wrapper(_loop, source, interval, not unicode_ok())
    return result


def _styles() -> dict[str, int]:
    styles = {"header": curses.A_REVERSE, "title": curses.A_BOLD, "dim": curses.A_DIM, "error": curses.A_BOLD}
    try:
        if curses.has_colors():
            curses.start_color()
            curses.use_default_colors()
            for n, color in enumerate((curses.COLOR_RED, curses.COLOR_YELLOW, curses.COLOR_CYAN), start=1):
                curses.init_pair(n, color, -1)
            styles["critical"] = curses.color_pair(1) | curses.A_BOLD
            styles["warning"] = curses.color_pair(2)
            styles["info"] = curses.color_pair(3)
            styles["error"] = curses.color_pair(1) | curses.A_BOLD
    except curses.error:
        pass
    return styles


def draw(screen: Any, lines: list[layout.Line], styles: dict[str, int]) -> None:
    height, width = screen.getmaxyx()
    screen.erase()
    for y, line in enumerate(lines[:height]):
        x = 0
        for text, style in line.segments:
            room = width - x - (1 if y == height - 1 else 0)  # the last cell would scroll
            if room <= 0:
                break
            try:
                screen.addnstr(y, x, text, room, styles.get(style, 0))
            except curses.error:
                break
            x += len(text)
    screen.noutrefresh()
    curses.doupdate()


def _resized_unseen(screen: Any) -> bool:
    """Whether the terminal's size differs from the screen's, resized to it if so: ncurses
    says a resize once (KEY_RESIZE), and one that came while a frame was drawn on a loaded
    host was seen lost, leaving the old frame up for good (test_top)."""
    try:
        size = os.get_terminal_size(sys.__stdout__.fileno() if sys.__stdout__ else 1)
    except (OSError, ValueError):
        return False
    if (size.lines, size.columns) == screen.getmaxyx():
        return False
    with contextlib.suppress(curses.error):
        curses.resizeterm(size.lines, size.columns)
    return True


def _loop(screen: Any, source: Source, interval: float, ascii_only: bool) -> int:
    with contextlib.suppress(curses.error):
        curses.curs_set(0)
    screen.timeout(TICK_MS)
    screen.keypad(True)
    styles = _styles()
    runs = source.poll()
    next_poll = time.monotonic() + interval
    dirty = True
    while True:
        if dirty:
            height, width = screen.getmaxyx()
            lines = layout.render(
                runs,
                width,
                height,
                source=source.label,
                error=source.error,
                interval=interval,
                ascii_only=ascii_only,
            )
            draw(screen, lines, styles)
            dirty = False
        key = screen.getch()
        if key in QUIT_KEYS:
            return 0
        if key == curses.KEY_RESIZE or _resized_unseen(screen):
            curses.update_lines_cols()
            dirty = True
        elif key != -1 or time.monotonic() >= next_poll:
            runs = source.poll()
            next_poll = time.monotonic() + interval
            dirty = True
