"""The HTML report from synthetic traces: findings before plots, plots drawn, everything
escaped, nothing fetched, lineage and restore marks, bounded size for long runs.

The page in a real browser: tests/integration/test_html_report.py.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

from bench import synthetic as syn
from epochwatch.analysis.files import analyze_file
from epochwatch.cli import main
from epochwatch.report import figures, plots
from epochwatch.report import html as html_report
from epochwatch.report.summary import summarize

GIB, MIB = syn.GIB, syn.MIB
SHA = "c" * 64


def _leaky(tmp_path: Path, n: int = 40, run_id: str = "leaky", **extra: Any) -> Path:
    rng = random.Random(1)

    def make(i: int) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "seconds": syn.noisy(rng, 1.0, 0.03) + (4.0 if i == 0 else 0.0),
            "metrics": {"loss": 1.0 / (i + 1), "val_loss": 1.1 / (i + 1)},
            "host": syn.host_block(2 * GIB + 100 * MIB * i),
            "retraces": {"new": 3 if i == 0 else 0, "functions": {}},
            "dirs": {"/ckpt": {"bytes": 1000 * i, "files": i, "role": "checkpoint"}},
        }
        for key, make_value in extra.items():
            rec[key] = make_value(i)
        return rec

    return syn.write(tmp_path / f"{run_id}.jsonl", syn.trace(n, make, planned=n, run_id=run_id))


def _page(*paths: Path, lineage: dict[str, Any] | None = None) -> str:
    return _page_of([analyze_file(p) for p in paths], lineage)


def _page_of(analyses: list[Any], lineage: dict[str, Any] | None = None) -> str:
    runs = []
    for an in analyses:
        s = summarize(an)
        s["figures"] = figures.build(an, s["findings"])["figures"]
        runs.append(s)
    out = io.StringIO()
    html_report.render(out, runs, ["gone.jsonl: empty file"], lineage)
    return out.getvalue()


def test_findings_come_first_then_the_plots(tmp_path: Path) -> None:
    page = _page(_leaky(tmp_path))
    assert page.startswith("<!DOCTYPE html>")
    assert page.index("host_memory_growth") < page.index("<svg")
    assert "Fix:" in page and "slope per epoch" in page and "100 MiB" in page
    for title in (
        "Epoch time",
        "Loss",
        "Host memory (RSS)",
        "New tf.function traces per epoch",
        "checkpoint: /ckpt",
    ):
        assert f"<figcaption>{title}" in page
    assert page.count("<svg") == 5
    # the fitted trend, the projection toward physical memory, the warm-up clipped at the top
    assert 'class="trend"' in page and 'class="projection"' in page and "warm-up" in page
    assert "gone.jsonl: empty file" in page


def test_the_page_fetches_nothing_and_runs_nothing(tmp_path: Path) -> None:
    page = _page(_leaky(tmp_path))
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<script" not in page.lower()
    urls = set(re.findall(r"(?:https?:)?//[^\s\"'<>)]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "//"}, urls
    assert "@import" not in page and "url(" not in page.replace("url(#clip-", "")
    assert "nan" not in re.sub(r"[a-z]nan|nan[a-z]", "", page.lower())


def test_everything_from_the_trace_is_escaped(tmp_path: Path) -> None:
    evil = '<img src=x onerror="alert(1)">'
    rng = random.Random(4)
    recs = syn.trace(
        30,
        lambda i: {
            "seconds": syn.noisy(rng, 1.0, 0.03),
            "host": syn.host_block(GIB),
            "dirs": {f"/tmp/{evil}": {"bytes": 10 * MIB * i, "files": i, "role": "user"}},
        },
        run_id=f"run-{evil}",
    )
    recs[0]["env"]["hostname"] = evil
    page = _page(syn.write(tmp_path / "evil.jsonl", recs))
    assert "<img" not in page and 'onerror="' not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


def test_long_runs_are_decimated_to_a_small_file(tmp_path: Path) -> None:
    path = _leaky(tmp_path, n=5000, run_id="long")
    an = analyze_file(path)  # once: analysing 5000 epochs is most of this test's time
    figs = figures.build(an, [])["figures"]
    for fig in figs:
        for s in fig["series"]:
            assert len(s["x"]) <= plots.MAX_POINTS + 1
    page = _page_of([an])
    assert len(page.encode()) < 250_000


def test_decimation_keeps_extremes_and_gaps() -> None:
    xs = list(range(10_000))
    ys: list[float | None] = [float(i % 100) for i in xs]
    ys[5000] = 1e9
    ys[7000] = None
    dx, dy = plots.decimate(xs, ys, 200)
    assert len(dx) <= 201
    assert 1e9 in dy and None in dy and 0.0 in dy
    assert dx == sorted(dx)
    assert plots.decimate([1, 2], [3.0, None]) == ([1, 2], [3.0, None])


def test_axis_labels_are_round_numbers_in_readable_units() -> None:
    _, labels = plots.ticks(0, 2.6 * MIB, "bytes")
    assert labels == ["0 MiB", "1 MiB", "2 MiB"]
    _, labels = plots.ticks(1.3 * GIB, 1.3 * GIB + 4 * MIB, "bytes")  # narrow, high: MiB, not 1.30x GiB
    assert all(label.endswith(" MiB") and len(label) <= 10 for label in labels), labels
    _, labels = plots.ticks(0, 0.3, "seconds")
    assert labels == ["0 ms", "100 ms", "200 ms", "300 ms"]
    values, _ = plots.ticks(0, 3.2, "count")
    assert values == [0, 1, 2, 3]


def test_gpu_memory_is_plotted_with_the_device_total(tmp_path: Path) -> None:
    def gpu(i: int) -> dict[str, Any]:
        return {
            "devices": [
                {
                    "index": 0,
                    "name": "NVIDIA H100",
                    "memory_used_bytes": 40 * GIB,
                    "memory_total_bytes": 80 * GIB,
                    "process_memory_bytes": int(50 * GIB + GIB * i),
                }
            ]
        }

    page = _page(_leaky(tmp_path, gpu=gpu))
    assert "<figcaption>GPU memory" in page
    assert "GPU:0 process (NVIDIA H100)" in page
    assert "GPU:0 total 80.0 GiB" in page and 'class="limit"' in page


def _with_lineage(tmp_path: Path) -> tuple[Path, Path]:
    parent = syn.trace(10, lambda i: {"seconds": 1.0, "metrics": {"loss": 1.0 / (i + 1)}}, run_id="parent")
    parent.insert(
        -1,
        {
            "type": "save",
            "run_id": "parent",
            "t": syn.T0 + 10,
            "saved_at": syn.T0 + 10,
            "path": "/ckpt/epoch-009.keras",
            "format": "keras",
            "sha256": SHA,
            "iterations": 520,
        },
    )
    child = syn.trace(10, lambda i: {"seconds": 1.0, "metrics": {"loss": 0.1 + i * 0.01}}, run_id="child")
    for rec in child[1:]:
        rec["t"] += 100
        if rec["type"] == "epoch":
            rec["epoch"] += 10
    child.insert(
        6,
        {
            "type": "restore",
            "run_id": "child",
            "t": syn.T0 + 105,
            "restored_at": syn.T0 + 105,
            "path": "/copied/epoch-009.keras",
            "format": "keras",
            "sha256": SHA,
        },
    )
    return syn.write(tmp_path / "parent.jsonl", parent), syn.write(tmp_path / "child.jsonl", child)


def test_report_command_writes_the_lineage_and_marks_the_restore(tmp_path: Path) -> None:
    _with_lineage(tmp_path)
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path), "--format", "html", "--output", str(out)]) == 0
    page = out.read_text()
    lineage = page[page.index("Lineage of restored runs") : page.index('<section class="run"')]
    assert '<a href="#run-1">parent</a>' in lineage and '<a href="#run-0">child</a>' in lineage
    assert "restored epoch-009.keras, saved at step 520" in lineage
    child = page[page.index('id="run-0"') : page.index('id="run-1"')]
    assert 'class="restore"' in child and "restored epoch-009.keras saved by run parent at step 520" in child
    marks = re.findall(r'<line class="restore" x1="([\d.]+)"', child)
    assert marks and len(set(marks)) == 1  # the same place, between epochs 14 and 15, on every plot


def test_html_goes_to_stdout_without_output(tmp_path: Path, capsys: Any) -> None:
    path = _leaky(tmp_path, n=12)
    assert main(["report", str(path), "--format", "html"]) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")
