"""`epochwatch check`: exit 0 clean, 1 findings at or above the level, 2 unusable input."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from bench import synthetic as syn
from epochwatch.cli import main

GIB, MIB = syn.GIB, syn.MIB


def _trace(tmp_path: Path, name: str, leak: bool) -> Path:
    rng = random.Random(3)

    def make(i: int) -> dict[str, Any]:
        return {
            "seconds": syn.noisy(rng, 1.0, 0.05),
            "host": syn.host_block(2 * GIB + (100 * MIB * i if leak else 0)),
        }

    return syn.write(tmp_path / f"{name}.jsonl", syn.trace(40, make, run_id=name, planned=40))


def _files_only(tmp_path: Path) -> Path:
    """Only an info finding: a temp directory gaining small files."""
    make = lambda i: {"dirs": {"/nonexistent/t": {"bytes": 10 * i, "files": 2 * i, "role": "temp"}}}  # noqa: E731
    return syn.write(tmp_path / "info.jsonl", syn.trace(40, make, run_id="info"))


def test_clean_run_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(_trace(tmp_path, "ok", leak=False))]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 run(s) checked, 0 finding(s)")


def test_findings_exit_1_with_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _trace(tmp_path, "leak", leak=True)
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: ") and "host_memory_growth" in out[0]
    assert out[-1].startswith("fail: 1 run(s) checked")


def test_fail_on_levels(tmp_path: Path) -> None:
    path = _files_only(tmp_path)
    assert main(["check", str(path)]) == 0
    assert main(["check", "--fail-on", "info", str(path)]) == 1
    assert main(["check", "--fail-on", "critical", str(_trace(tmp_path, "leak", leak=True))]) in (0, 1)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"not json at all\n" * 60, "not an epochwatch trace"),
        (b'{"foo": 1}\n' * 60, "not an epochwatch trace"),
        (b'{"type": "run_start", "run_id": "x", "schema": 99}\n', "schema 99"),
        (b"\x00\x01\x02binary", "not an epochwatch trace"),
    ],
)
def test_unusable_files_exit_2_with_a_reason_and_others_still_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content)
    leak = _trace(tmp_path, "leak", leak=True)
    assert main(["check", str(bad), str(leak)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and reason in err[0] and err[0].startswith("epochwatch check: ")
    assert "host_memory_growth" in captured.out  # the good file was still checked
    assert "Traceback" not in captured.err


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--fail-on", "loud", str(tmp_path)]) == 2
    assert main(["check", str(tmp_path / "nothing-here")]) == 2
    empty_dir = tmp_path / "d"
    empty_dir.mkdir()
    assert main(["check", str(empty_dir)]) == 2
    assert "no *.jsonl traces" in capsys.readouterr().err


def test_skipped_lines_are_counted_and_fail_with_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _trace(tmp_path, "damaged", leak=False)
    lines = path.read_bytes().splitlines(keepends=True)
    # Most of the epochs torn or garbled, as a full disk and a bad copy leave them.
    damaged = [
        lines[0],
        *(b"{not json\n" if i % 4 else line for i, line in enumerate(lines[1:-1])),
        lines[-1],
    ]
    path.write_bytes(b"".join(damaged))
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: skipped 30 of 42 lines" in out
    assert (
        out.splitlines()[-1].startswith("ok: 1 run(s) checked") and "30 line(s) skipped in 1 trace(s)" in out
    )
    assert main(["check", "--strict", str(path)]) == 2
    assert capsys.readouterr().out.splitlines()[-1].startswith("unusable input:")
    clean = _trace(tmp_path, "clean", leak=False)
    assert main(["check", "--strict", str(clean)]) == 0
