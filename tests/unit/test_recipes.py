"""Every recipe in docs/recipes.md runs, on a directory of traces, and gives the right answer.

The traces: three runs of two scripts on two hosts (one of schema 1, with `dirs` as a dict,
and a torn last line), one of them with a finding. Each ```python block of the page is run
as it is written, with TRACES set; its `result` is checked here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bench import synthetic as syn
from epochwatch.analysis.findings import Finding

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"
MIB = syn.MIB


def _run(
    run_id: str, script: str, host: str, seconds: list[float], rss_mib: list[int], dirs_form: str
) -> list[dict]:
    def make(i: int) -> dict[str, Any]:
        block = {"bytes": 100 * (i + 1), "files": i + 1, "role": "checkpoint"}
        dirs: Any = [{"path": "/ckpt", **block}] if dirs_form == "list" else {"/ckpt": block}
        return {"seconds": seconds[i], "host": syn.host_block(rss_mib[i] * MIB), "dirs": dirs}

    records = syn.trace(len(seconds), make, run_id=run_id)
    records[0]["env"].update(script=script, hostname=host)
    return records


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("traces")
    a1 = _run("a1", "/w/a.py", "h1", [1.0, 2.0, 3.0], [100, 300, 200], "list")
    a1.insert(-1, Finding("host_memory_growth", "warning", "grows", {"slope": 1.0}).to_record("a1"))
    syn.write(d / "a1.jsonl", a1)
    syn.write(d / "a2.jsonl", _run("a2", "/w/a.py", "h2", [5.0, 7.0], [50, 60], "list"))
    b1 = _run("b1", "/w/b.py", "h1", [0.5, 0.5, 1.5], [10, 20, 30], "dict")
    b1[0]["schema"] = 1
    path = syn.write(d / "b1.jsonl", b1)
    with path.open("a") as f:
        f.write('{"type": "epoch", "run_id": "b1", "sec')  # torn last line
    return d


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def _result(code: str, traces: Path) -> Any:
    scope: dict[str, Any] = {"TRACES": str(traces)}
    exec(compile(code, str(DOC), "exec"), scope)
    return scope["result"]


def test_the_page_has_the_recipes() -> None:
    assert len(_blocks()) == 5


def test_duckdb_runs_with_findings(traces: Path) -> None:
    pytest.importorskip("duckdb")
    assert _result(_blocks()[0], traces) == [("a1", 1, 1, "host_memory_growth")]


def test_duckdb_median_epoch_time_per_script(traces: Path) -> None:
    pytest.importorskip("duckdb")
    assert _result(_blocks()[1], traces) == [("/w/a.py", 3.0, 5), ("/w/b.py", 0.5, 3)]


def test_duckdb_peak_rss_per_run(traces: Path) -> None:
    pytest.importorskip("duckdb")
    assert _result(_blocks()[2], traces) == [("a1", 300 * MIB), ("a2", 60 * MIB), ("b1", 30 * MIB)]


def test_duckdb_checkpoint_dirs_across_hosts(traces: Path) -> None:
    pytest.importorskip("duckdb")
    # b1 is schema 1 (dict form): the list-form query leaves it out, as the page says.
    assert _result(_blocks()[3], traces) == [("h1", "/ckpt", 300), ("h2", "/ckpt", 200)]


def test_pandas_all_three(traces: Path) -> None:
    pytest.importorskip("pandas")
    had, median, peak = _result(_blocks()[4], traces)
    assert had == ["a1"]
    assert median == {"/w/a.py": 3.0, "/w/b.py": 0.5}
    assert peak == {"a1": 300 * MIB, "a2": 60 * MIB, "b1": 30 * MIB}
