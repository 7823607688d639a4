"""`epochwatch report`: text and JSON from synthetic traces, unusable files, --output."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pytest

from bench import synthetic as syn
from epochwatch.analysis.files import analyze_file
from epochwatch.cli import main
from epochwatch.report import html as html_report
from epochwatch.report import json as json_report
from epochwatch.report import text as text_report
from epochwatch.report.sparkline import sparkline
from epochwatch.report.summary import summarize, table_indexes

GIB, MIB = syn.GIB, syn.MIB


def _leaky(tmp_path: Path, name: str = "leaky", n: int = 40) -> Path:
    rng = random.Random(1)

    def make(i: int) -> dict[str, Any]:
        return {
            "seconds": syn.noisy(rng, 1.0, 0.05),
            "metrics": {"loss": 1.0 / (i + 1)},
            "host": syn.host_block(2 * GIB + 100 * MIB * i),
            "retraces": {"new": 3 if i == 0 else 0, "functions": {}},
        }

    return syn.write(tmp_path / f"{name}.jsonl", syn.trace(n, make, planned=n, run_id=name))


def _healthy(tmp_path: Path, name: str = "healthy") -> Path:
    rng = random.Random(2)
    return syn.write(
        tmp_path / f"{name}.jsonl",
        syn.trace(
            30, lambda i: {"seconds": syn.noisy(rng, 1.0, 0.05), "host": syn.host_block(GIB)}, run_id=name
        ),
    )


def test_a_tf_keras_run_names_tf_keras_among_its_versions(tmp_path: Path) -> None:
    # keras#13195's siamese script ran on `import tf_keras as keras`; the versions line said
    # keras 3.15 only, the Keras it did not train with.
    records = syn.trace(5, lambda i: {"seconds": 1.0}, run_id="legacy")
    records[0]["env"]["packages"]["tf_keras"] = "2.21.0"
    out = io.StringIO()
    text_report.render(out, [summarize(analyze_file(syn.write(tmp_path / "legacy.jsonl", records)))])
    assert "keras 3.15.0 · tf_keras 2.21.0" in out.getvalue()


def test_a_jax_runs_header_counts_jitted_functions_traces(tmp_path: Path) -> None:
    """jax#803's pure JAX loop: its header said "new tf.function traces after warm-up" for
    `jax.jit` compiles; a TensorFlow run's still says tf.function."""
    for backend, said in (("jax", "jitted function"), ("tensorflow", "tf.function")):
        records = syn.trace(
            5,
            lambda i: {
                "seconds": 1.0,
                "retraces": {"new": 2, "functions": {"step": {"new": 2, "total": 2 * i + 2}}},
            },
        )
        records[0]["env"]["keras_backend"] = backend
        out = io.StringIO()
        text_report.render(out, [summarize(analyze_file(syn.write(tmp_path / f"{backend}.jsonl", records)))])
        assert f"8 new {said} traces after warm-up" in out.getvalue(), out.getvalue()[:600]


def test_a_second_stage_fits_optimizer_and_plan_are_in_the_header(tmp_path: Path) -> None:
    # ludwig#3733's two stages: the header said the first fit's Adam at 1e-3 and 3 epochs for a
    # run whose second fit fine-tuned with RMSprop at 1e-5, the base unfrozen, for 10.
    records = syn.trace(13, lambda i: {"seconds": 1.0}, planned=3, run_id="stages")
    first = {**records[0]["training"], "model": {**records[0]["training"]["model"], "trainable_params": 34}}
    records[0]["training"] = first
    second = {
        **first,
        "type": "fit_start",
        "run_id": "stages",
        "fit": 1,
        "model": {**first["model"], "trainable_params": 1234},
        "optimizer": {"class": "RMSprop", "config": {"learning_rate": 1e-05}},
        "epochs": 10,
    }
    records[1:1] = [{**first, "type": "fit_start", "run_id": "stages"}]
    records.insert(5, second)
    out = io.StringIO()
    text_report.render(out, [summarize(analyze_file(syn.write(tmp_path / "stages.jsonl", records)))])
    text = out.getvalue()
    assert "1,234 params (34 trainable) · Adam lr 0.001" in text, text
    assert "; the last: Sequential: 1,234 params · RMSprop lr 1e-05 · 10 epochs planned" in text, text
    # A loop of the same fit again says no "last".
    same = syn.trace(13, lambda i: {"seconds": 1.0}, planned=3, run_id="same")
    same.insert(4, {**same[0]["training"], "type": "fit_start", "run_id": "same", "fit": 1})
    out = io.StringIO()
    text_report.render(out, [summarize(analyze_file(syn.write(tmp_path / "same.jsonl", same)))])
    assert "the last" not in out.getvalue()


def test_windows_of_calls_after_a_fit_are_marked_in_the_table_and_counted_apart(tmp_path: Path) -> None:
    # tensorflow#33030's train-then-serve: "9 epochs", numbered 1-5 then 1-4 again.
    def make(i: int) -> dict[str, Any]:
        return {"epoch": i - 5, "inference": {"calls": 50}} if i >= 5 else {"seconds": 0.1}

    records = syn.trace(9, make, planned=5, run_id="serve")
    run = summarize(analyze_file(syn.write(tmp_path / "serve.jsonl", records)))
    assert run["windows"] == 4 and run["epoch_table"]["kinds"] == ["epoch"] * 5 + ["window"] * 4
    out = io.StringIO()
    text_report.render(out, [run])
    text = out.getvalue()
    assert "completed · 5 epochs · 4 windows of calls" in text, text
    assert "epochs (9, 4 of them windows of inference calls)" in text
    rows = [
        line.split()[0]
        for line in text.splitlines()
        if line.startswith("  ") and line.split()[0][-1:].isdigit()
    ]
    assert rows[:9] == ["1", "2", "3", "4", "5", "w1", "w2", "w3", "w4"], rows
    html = io.StringIO()
    html_report.render(html, [run])
    assert "<td>w4</td>" in html.getvalue()
    plain = summarize(analyze_file(_healthy(tmp_path)))
    assert "windows" not in plain and "kinds" not in plain["epoch_table"]


def test_text_report_has_fingerprint_findings_then_table(tmp_path: Path) -> None:
    out = io.StringIO()
    text_report.render(out, [summarize(analyze_file(_leaky(tmp_path)))])
    text = out.getvalue()
    assert "== run leaky ==" in text
    assert "python 3.11.7 · tensorflow 2.21.0 · keras 3.15.0" in text
    assert "synthetic-host · 8 CPUs · 16.0 GiB memory" in text
    assert (
        "Sequential 'model': 1,234 params · Adam lr 0.001 · loss mse · batch 32 · 40 epochs planned" in text
    )
    assert "completed · 40 epochs" in text
    assert "none skipped" in text
    assert text.index("findings (") < text.index("epochs (40")
    assert "host_memory_growth" in text and "fix:" in text and "evidence: slope 100 MiB/epoch" in text
    header = next(line for line in text.splitlines() if "retraces" in line and "epoch" in line)
    assert header.split() == ["epoch", "time", "loss", "RSS", "GPU", "mem", "retraces", "watched"]
    assert "RSS       ▁" in text and "█" in text


def test_long_runs_show_a_decimated_table(tmp_path: Path) -> None:
    out = io.StringIO()
    text_report.render(out, [summarize(analyze_file(_leaky(tmp_path, n=300)))])
    assert "epochs (300, 39 shown)" in out.getvalue()
    assert table_indexes(10, 40) == (list(range(10)), 1)
    idx, stride = table_indexes(100_000, 40)
    assert idx[:5] == [0, 1, 2, 3, 4] and idx[-1] == 99_999 and stride > 1 and len(idx) <= 45


def test_json_report_follows_the_contract(tmp_path: Path) -> None:
    out = io.StringIO()
    json_report.render(out, [summarize(analyze_file(_leaky(tmp_path)))], ["bad.jsonl: empty file"])
    doc = json.loads(out.getvalue())
    assert doc["problems"] == ["bad.jsonl: empty file"]
    run = doc["runs"][0]
    assert run["run_id"] == "leaky"
    f = run["findings"][0]
    assert {"kind", "severity", "title", "evidence", "hint", "target", "epoch"} <= set(f)
    assert f["kind"] == "host_memory_growth"
    assert run["epoch_table"]["columns"] == ["epoch", "time", "loss", "rss", "gpu_mem", "retraces", "watched"]
    assert len(run["epoch_table"]["rows"]) == 40
    assert run["epoch_table"]["rows"][0][4] is None  # no GPU: absent, not 0
    assert run["fingerprint"]["tensorflow"] == "2.21.0"


def test_findings_recorded_in_the_trace_are_kept(tmp_path: Path) -> None:
    records = syn.trace(5, lambda i: {})
    records.insert(
        3,
        {
            "type": "finding",
            "run_id": "synthetic",
            "kind": "slow_restore",
            "severity": "warning",
            "title": "restore took 40 s",
            "evidence": {"load_seconds": 40},
            "hint": "h",
            "target": "/c",
            "epoch": 1,
        },
    )
    an = analyze_file(syn.write(tmp_path / "r.jsonl", records))
    out = io.StringIO()
    text_report.render(out, [summarize(an)])
    assert "slow_restore [/c] @epoch 2 [from trace]: restore took 40 s" in out.getvalue()


def test_cli_report_json_to_a_file_and_unusable_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _leaky(tmp_path)
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "foreign.jsonl").write_text("hello\n" * 60)
    dest = tmp_path / "out" / "report.json"
    dest.parent.mkdir()
    assert main(["report", str(tmp_path), "--format", "json", "--output", str(dest)]) == 2
    doc = json.loads(dest.read_text())
    assert [r["run_id"] for r in doc["runs"]] == ["leaky"]
    assert len(doc["problems"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert any("empty file" in line for line in err) and any(
        "not an epochwatch trace" in line for line in err
    )
    assert all("Traceback" not in line for line in err)


def test_cli_report_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _healthy(tmp_path)
    assert main(["report", str(path)]) == 0
    assert "findings  none" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["report", "--format", "pdf", str(path)]) == 2
    assert "invalid choice: 'pdf'" in capsys.readouterr().err


def test_torn_last_line_is_reported_not_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _healthy(tmp_path)
    with path.open("ab") as fh:
        fh.write(b'{"type": "epoch", "run_id": "hea')
    assert main(["report", str(path)]) == 0
    assert "1 skipped, torn last line" in capsys.readouterr().out


def test_sparkline() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▁▁▁"
    assert sparkline([1, float("nan"), 3]) == "▁ █"
    assert len(sparkline(list(range(1000)), width=40)) == 40
    assert sparkline([]) == ""
    mib = 1 << 20
    flat = sparkline([541.0 * mib, 541.2 * mib, 541.7 * mib, 541.0 * mib])  # a flat RSS, as plots draw it
    assert set(flat) <= set("▃▄▅")  # mid-height, not a climb from ▁ to █


def test_a_path_named_twice_is_read_once(tmp_path: Path) -> None:
    from epochwatch.trace.reader import find_traces

    path = _healthy(tmp_path)
    files, problems = find_traces([tmp_path, tmp_path, path, tmp_path / "gone", tmp_path / "gone"])
    assert files == [path]
    assert problems == [f"{tmp_path / 'gone'}: no such file or directory"]


def test_each_error_is_printed_once_on_a_terminal(tmp_path: Path) -> None:
    """stdout and stderr on one terminal: the problem is said once (on stderr), not again in the report."""
    import os
    import pty
    import subprocess
    import sys

    from tests.support import REPO

    path = _healthy(tmp_path)
    leader, follower = pty.openpty()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "epochwatch", "report", str(path), str(tmp_path / "missing.jsonl")],
        stdout=follower,
        stderr=follower,
        env=env,
        timeout=120,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    screen = b"".join(chunks).decode()
    assert proc.returncode == 2
    assert screen.count("missing.jsonl: no such file or directory") == 1, screen
    assert "== run healthy ==" in screen


def test_a_run_stopped_after_its_last_fit_is_not_said_to_be_killed(tmp_path: Path) -> None:
    """A trial run in a multiprocessing Pool worker: the fit completes, then Pool's terminate()
    sends SIGTERM, and no run_end is written; its report read "abruptly (no run_end: killed,
    ...)" for every healthy trial. One stopped mid-fit still reads abruptly."""

    def ended(with_fit_end: bool) -> str:
        records = [syn.run_start("trial")]
        records.append({"type": "fit_start", "run_id": "trial", "t": syn.T0, "fit": 0, "epochs": 3})
        records += [syn.epoch_record("trial", i, syn.T0 + i, 1.0) for i in range(3)]
        if with_fit_end:
            records.append(
                {"type": "fit_end", "run_id": "trial", "t": syn.T0 + 4, "fit": 0, "ended": "completed"}
            )
        out = io.StringIO()
        text_report.render(
            out, [summarize(analyze_file(syn.write(tmp_path / f"t{with_fit_end}.jsonl", records)))]
        )
        return next(line for line in out.getvalue().splitlines() if line.startswith("ended"))

    assert "after its last fit completed (its process ended without Python's exit handlers" in ended(True)
    assert "abruptly (no run_end: killed, or still running)" in ended(False)
