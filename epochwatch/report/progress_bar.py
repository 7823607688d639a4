"""A one-line progress bar on stderr, by bytes read, for `report` over many or large traces.

Shown only when the stream is a terminal: a report piped into a file, a CI log or `less`
gets no control characters. It appears only after `delay` seconds, so a report that takes
a blink shows nothing, and redraws at most every `interval` seconds, so a 1 GiB trace read
in 1 MiB chunks costs a few hundred writes, not a thousand. `close()` erases the line,
leaving the terminal as it was for the report or the errors that follow.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from typing import IO

from epochwatch.analysis.units import fmt_bytes
from epochwatch.text_safety import escape

DELAY = 0.5
INTERVAL = 0.1
BAR_WIDTH = 24


def is_terminal(stream: IO[str]) -> bool:
    """A stream worth drawing on: a tty, and not a terminal that says it cannot move the cursor."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
    return bool(tty) and os.environ.get("TERM") != "dumb"


class Progress:
    """Bytes done of `total`, drawn as `label [████····]  45%  450 MiB / 1.0 GiB  name`."""

    def __init__(
        self,
        stream: IO[str],
        total: int,
        *,
        label: str = "reading",
        delay: float | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        columns: int | None = None,
    ) -> None:
        self.stream = stream
        self.total = max(0, total)
        self.label = label
        self.delay = DELAY if delay is None else delay
        self.interval = INTERVAL if interval is None else interval
        self.clock = clock
        self.columns = columns
        self.done = 0
        self.name = ""
        self.shown = False
        self._started = clock()
        self._last = -1e18

    def set_name(self, name: str) -> None:
        """What is being read now (a file name), shown after the numbers."""
        self.name = escape(name)

    def advance(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if now - self._started < self.delay or now - self._last < self.interval:
            return
        self._last = now
        self._draw()

    def line(self, columns: int) -> str:
        """The bar's text, at most `columns - 1` characters (the last column would wrap)."""
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(frac * BAR_WIDTH)
        bar = "█" * filled + "·" * (BAR_WIDTH - filled)
        text = f"{self.label} [{bar}] {frac * 100:3.0f}%  {fmt_bytes(self.done)} / {fmt_bytes(self.total)}"
        if self.name:
            text += f"  {self.name}"
        room = max(10, columns - 1)
        return text if len(text) <= room else text[: room - 1] + "…"

    def _draw(self) -> None:
        try:
            columns = self.columns or os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
        try:
            self.stream.write("\r" + self.line(columns) + "\x1b[K")
            self.stream.flush()
        except (OSError, ValueError):
            return
        self.shown = True

    def close(self) -> None:
        """Erase the bar (if it was ever drawn)."""
        if self.shown:
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            self.shown = False


def for_stream(stream: IO[str], total: int, label: str = "reading") -> Progress | None:
    """A Progress on `stream` when it is a terminal; None (draw nothing) when it is not."""
    if not is_terminal(stream):
        return None
    return Progress(stream, total, label=label)
