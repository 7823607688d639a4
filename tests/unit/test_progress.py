"""`report`'s progress bar: drawn on a terminal only, by bytes read, erased at the end."""

from __future__ import annotations

import io
import random
import sys
from pathlib import Path

import pytest

from bench import synthetic as syn
from epochwatch.cli import main
from epochwatch.report import progress_bar


class FakeTTY(io.StringIO):
    """A stream that says it is a terminal, and keeps what was drawn on it."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_only_a_terminal_gets_a_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert progress_bar.for_stream(io.StringIO(), 100) is None  # piped or redirected
    assert progress_bar.for_stream(FakeTTY(), 100) is not None
    monkeypatch.setenv("TERM", "dumb")
    assert progress_bar.for_stream(FakeTTY(), 100) is None


def test_the_bar_shows_bytes_read_after_a_delay_and_erases_itself() -> None:
    out, clock = FakeTTY(), Clock()
    bar = progress_bar.Progress(out, 4 * syn.MIB, clock=clock, columns=80, delay=0.5, interval=0.1)
    bar.advance(syn.MIB)
    assert out.getvalue() == ""  # a quick report shows nothing
    clock.now = 0.6
    bar.set_name("run.jsonl")
    bar.advance(syn.MIB)
    drawn = out.getvalue()
    assert drawn.startswith("\r") and drawn.endswith("\x1b[K")
    assert "reading [" + "█" * 12 + "·" * 12 + "]  50%  2.0 MiB / 4.0 MiB  run.jsonl" in drawn
    clock.now = 0.65
    bar.advance(syn.MIB)  # within the redraw interval: nothing drawn
    assert out.getvalue() == drawn
    clock.now = 0.8
    bar.advance(syn.MIB)
    assert "100%  4.0 MiB / 4.0 MiB" in out.getvalue()
    bar.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_the_line_fits_a_narrow_terminal() -> None:
    bar = progress_bar.Progress(FakeTTY(), 10, columns=40)
    bar.set_name("a-very-long-trace-file-name-from-a-cluster.jsonl")
    bar.done = 5
    line = bar.line(40)
    assert len(line) == 39 and line.endswith("…")
    assert progress_bar.Progress(FakeTTY(), 0).line(80).startswith("reading [" + "█" * progress_bar.BAR_WIDTH)


def _traces(tmp_path: Path) -> Path:
    rng = random.Random(5)
    for k in range(3):
        recs = syn.trace(20, lambda i: {"seconds": syn.noisy(rng, 1.0, 0.05)}, run_id=f"r{k}")
        syn.write(tmp_path / f"r{k}.jsonl", recs)
    return tmp_path


def test_report_draws_the_bar_on_a_terminal_and_not_when_piped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = _traces(tmp_path)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(progress_bar, "DELAY", 0.0)
    monkeypatch.setattr(progress_bar, "INTERVAL", 0.0)
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    assert main(["report", str(traces), "--format", "json", "-o", str(tmp_path / "r.json")]) == 0
    assert piped.getvalue() == ""
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    assert main(["report", str(traces), "--format", "html", "-o", str(tmp_path / "r.html")]) == 0
    drawn = tty.getvalue()
    assert "lineage [" in drawn and "reading [" in drawn and "100%" in drawn
    assert drawn.endswith("\r\x1b[K")  # erased: the terminal is left clean
    capsys.readouterr()
