"""What a trace or another user's run controls is printed inert: no escape sequence reaches
the terminal, no carriage return hides text, no newline starts a forged line."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from bench import synthetic as syn
from epochwatch.cli import main
from epochwatch.cli.daemon import _JournalFormatter, _SafeFormatter
from epochwatch.cli.status import render_text
from epochwatch.text_safety import escape, escape_tree

EVIL = "evil\x1b[2J\r\n<2>forged\u202e\x9b"


def _assert_inert(text: str) -> None:
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text and "\x9b" not in text, text
    for line in text.splitlines():
        assert not line.startswith(("<2>forged", "forged")), text
    assert "\\u001b[2J" in text  # said, visibly


def test_escape_leaves_ordinary_text_alone_and_makes_controls_visible() -> None:
    assert escape("train_resnet50.py — épochs") == "train_resnet50.py — épochs"
    assert escape("a\nb\tc\x00\x7f\x85\u2066") == "a\\u000ab\\u0009c\\u0000\\u007f\\u0085\\u2066"
    assert escape_tree({"k\n": [EVIL, 3, ("x\r",)]}) == {"k\\u000a": [escape(EVIL), 3, ("x\\u000d",)]}


def _evil_trace(tmp_path: Path, name: str) -> Path:
    records = syn.trace(6, lambda i: {"seconds": 1.0}, run_id=EVIL)
    finding = {
        "type": "finding",
        "run_id": EVIL,
        "kind": "slowdown",
        "severity": "warning",
        "title": f"title {EVIL}",
        "target": EVIL,
        "evidence": {EVIL: EVIL},
        "hint": f"hint {EVIL}",
    }
    return syn.write(tmp_path / f"{name}.jsonl", [*records[:-1], finding, records[-1]])


@pytest.mark.parametrize(
    "args",
    [["report"], ["report", "--format", "text"], ["check", "--fail-on", "info"]],
)
def test_report_and_check_print_trace_text_inert(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    path = _evil_trace(tmp_path, "a")
    main([*args, str(path)])
    out = capsys.readouterr()
    _assert_inert(out.out)
    assert "\x1b" not in out.err and "\r" not in out.err


def test_compare_prints_trace_text_inert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["compare", str(_evil_trace(tmp_path, "a")), str(_evil_trace(tmp_path, "b"))])
    _assert_inert(capsys.readouterr().out)


def test_an_unusable_path_is_named_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / f"{EVIL}.jsonl"
    bad.write_bytes(b"\x00" * 10)
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err and "\\u000a<2>forged" in err


def test_status_prints_other_users_runs_inert() -> None:
    runs = [
        {
            "run_id": EVIL,
            "pid": 1,
            "uid": 0,
            "script": f"/home/u/{EVIL}.py",
            "epoch": 3,
            "attached": True,
            "findings": [{"kind": EVIL, "severity": "warning"}],
        }
    ]
    out = io.StringIO()
    render_text(escape_tree(runs), out)
    _assert_inert(out.getvalue())
    assert len(out.getvalue().splitlines()) == 2  # the header and the one run


@pytest.mark.parametrize(
    "formatter", [_SafeFormatter("%(levelname)s %(message)s"), _JournalFormatter("%(message)s")]
)
def test_daemon_log_lines_cannot_be_forged(formatter: logging.Formatter) -> None:
    log = logging.getLogger("epochwatch.test-forge")
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("run %s: not watching %s: %s", EVIL, f"/data/{EVIL}", "gone")
        try:
            raise KeyError(EVIL)
        except KeyError:
            log.exception("run %s failed", EVIL)
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    _assert_inert(text)
    lines = text.splitlines()
    assert len([ln for ln in lines if not ln.startswith("  ")]) == 2  # two messages, traceback indented


def test_a_daemon_log_line_is_cut_to_a_bound_whatever_a_client_sent() -> None:
    """Audit: a hello whose `protocol` was a 1 MB string wrote a 1 MB log line."""
    record = logging.LogRecord(
        "epochwatch", logging.WARNING, __file__, 1, "speaks %s", ("x" * 1_000_000,), None
    )
    line = _SafeFormatter("%(message)s").format(record)
    assert len(line) < 4200 and line.endswith("(995911 characters cut)")


def test_top_prints_trace_text_inert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _evil_trace(tmp_path, "a")
    assert main(["top", "--dir", str(tmp_path), "--once"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out and "\x9b" not in out
    assert not any(line.startswith(("<2>forged", "forged")) for line in out.splitlines())
