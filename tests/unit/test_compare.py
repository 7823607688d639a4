"""`epochwatch compare BASE NEW`: side by side, what changed, implied findings, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from epochwatch.cli import main
from epochwatch.trace.writer import TraceWriter
from tests.unit import restore_records as rr


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    with TraceWriter(path) as w:
        for rec in records:
            w.write(rec)
    return path


def run_compare(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["compare", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_resumed_run_against_its_parent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(tmp_path / "parent.jsonl", rr.parent_records())
    new = write(
        tmp_path / "child.jsonl",
        rr.child_records(fit_over={"batch_size": 64, "input_stats": rr.stats(mean=50.0, std=10.0)}),
    )
    code, out, err = run_compare(capsys, str(base), str(new))
    assert code == 0 and err == ""
    assert "NEW resumed from BASE (restored model.keras, saved at step 500)" in out
    assert "* batch size" in out and "* x[0]" in out
    assert "  learning rate" in out  # unchanged rows are not marked
    assert "[critical] input_distribution_shift" in out
    # A deliberate change the loss went on from (0.6 -> 0.55): said, at info (severity by consequence)
    assert "[info] hyperparameter_changed_after_restore: Resumed with different batch_size 32 -> 64" in out


def test_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write(tmp_path / "parent.jsonl", rr.parent_records())
    new = write(tmp_path / "child.jsonl", rr.child_records())
    out_file = tmp_path / "cmp.json"
    code, out, _err = run_compare(capsys, str(base), str(new), "--format", "json", "--output", str(out_file))
    assert code == 0 and out == ""
    result = json.loads(out_file.read_text())
    assert result["relation"]["relation"] == "resumed" and result["findings"] == []
    assert result["base"]["run_id"] == "parent" and result["new"]["run_id"] == "child"
    titles = [s["title"] for s in result["sections"]]
    assert titles[:2] == ["Fingerprint", "Training"] and "Loss curve" in titles
    assert result["changes"] == []


def test_unrelated_runs_are_judged_as_if_continued(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write(tmp_path / "a.jsonl", rr.parent_records("a"))
    other = rr.parent_records("b")
    other[0] = rr.run_start("b", 1000.0, gpus=[{"name": "NVIDIA A100"}], cpu_count=4)
    other[1] = rr.fit_start("b", 1000.5, lr=0.1)
    other = [{**r, "lr": 0.1} if r["type"] == "epoch" else r for r in other if r["type"] != "save"]
    new = write(tmp_path / "b.jsonl", other)
    code, out, _err = run_compare(capsys, str(base), str(new))
    assert code == 0
    assert "unrelated" in out
    assert "Ran with different learning_rate" in out and "Ran on a different machine setup" in out
    assert "* gpus" in out and "* cpu_count" in out


def test_base_that_resumed_from_new(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parent = write(tmp_path / "parent.jsonl", rr.parent_records())
    child = write(tmp_path / "child.jsonl", rr.child_records(fit_over={"batch_size": 16}))
    code, out, _err = run_compare(capsys, str(child), str(parent))
    assert code == 0 and "BASE resumed from NEW" in out and "hyperparameter_changed_after_restore" in out


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: [str(d / "missing.jsonl"), str(d / "a.jsonl")], "no such file or directory"),
        (lambda d: [str(d / "junk.jsonl"), str(d / "a.jsonl")], "not an epochwatch trace"),
        (lambda d: [str(d), str(d / "a.jsonl")], "exactly one trace, found 3"),
    ],
)
def test_unusable_inputs_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, message: str
) -> None:
    write(tmp_path / "a.jsonl", rr.parent_records("a"))
    write(tmp_path / "b.jsonl", rr.parent_records("b"))
    (tmp_path / "junk.jsonl").write_text("hello\n" * 60)
    code, out, err = run_compare(capsys, *make(tmp_path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and err.startswith("epochwatch compare: ")


def test_a_directory_with_one_trace_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "c").mkdir()
    write(tmp_path / "p" / "parent.jsonl", rr.parent_records())
    write(tmp_path / "c" / "child.jsonl", rr.child_records())
    code, out, _err = run_compare(capsys, str(tmp_path / "p"), str(tmp_path / "c"))
    assert code == 0 and "NEW resumed from BASE" in out


def test_features_in_numeric_order_and_dash_o(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """x[2] comes before x[10] (not x[0], x[1], x[10], x[11], ...); `-o FILE` is accepted."""
    base = write(tmp_path / "a.jsonl", rr.child_records("a", fit_over={"input_stats": rr.stats(features=12)}))
    new = write(tmp_path / "child.jsonl", rr.child_records(fit_over={"input_stats": rr.stats(features=12)}))
    out_file = tmp_path / "cmp.txt"
    code, out, err = run_compare(capsys, str(base), str(new), "-o", str(out_file))
    assert code == 0 and out == "" and err == ""
    text = out_file.read_text()
    rows = [line.split()[0] for line in text.splitlines() if line.strip().startswith("x[")]
    assert rows[:8] == [f"x[{i}]" for i in range(8)], rows  # string order would put x[10], x[11] third


def test_a_leaking_run_against_a_healthy_one_shows_the_rss_and_the_leak(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 26: compare of a healthy and a leaking run showed no RSS row and 'none' implied."""
    from bench import synthetic as syn

    def run(run_id: str, growth: int) -> Path:
        records = syn.trace(
            30, lambda i: {"seconds": 1.0, "host": syn.host_block(syn.GIB + growth * i)}, run_id=run_id
        )
        return syn.write(tmp_path / f"{run_id}.jsonl", records)

    healthy, leaking = run("healthy", 0), run("leaking", 40 * syn.MIB)
    code, out, _err = run_compare(capsys, str(healthy), str(leaking))
    assert code == 0
    assert "* RSS last" in out and "RSS last 1.0 GiB -> 2.1 GiB" in out  # the row, and what changed
    assert (
        "[warning] host_memory_growth (NEW only)" in out or "[critical] host_memory_growth (NEW only)" in out
    )
    code, out, _err = run_compare(capsys, str(healthy), str(healthy))
    assert "  RSS last" in out and "(NEW only)" not in out
