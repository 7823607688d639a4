"""A real notebook, run by nbclient in a real ipykernel (issue 14: in Python and notebooks).

The kernel is told its notebook the way Jupyter Server tells it (JPY_SESSION_NAME). Two
fits in one kernel: each is a run of its own, named after the notebook, and each trace
ends with run_end while the kernel still lives (checked from inside the kernel, by its
last cell). `hook.findings()` returns the leaking fit's finding as report-JSON dicts and
displays as the HTML report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import KEEP_EVERYTHING, TINY_KERAS, child_env

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

CELLS = [
    TINY_KERAS + "from epochwatch import hook\n",
    "model.fit(x, y, epochs=3, batch_size=64, verbose=0);",
    KEEP_EVERYTHING + "model.fit(x, y, epochs=30, batch_size=64, verbose=0, callbacks=[KeepEverything()]);\n",
    """
found = hook.findings()
print("KINDS", sorted({f["kind"] for f in found}), sorted(found[0]) if found else None)
found
""",
    """
import glob, json, os
traces = {}
for path in sorted(glob.glob(os.path.join(os.environ["EPOCHWATCH_DIR"], "*.jsonl"))):
    lines = [json.loads(line) for line in open(path)]
    traces[os.path.basename(path)] = [lines[-1]["type"], lines[-1].get("ended"),
                                      sorted({r["fit"] for r in lines if r["type"] == "epoch"}),
                                      sum(r["type"] == "epoch" for r in lines)]
print("TRACES", json.dumps(traces))
""",
]


def _stream(cell: dict, marker: str) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            for line in out.get("text", "").splitlines():
                if line.startswith(marker):
                    return line[len(marker) :].strip()
    raise AssertionError(f"no {marker} line in {cell.get('outputs')}")


@pytest.mark.slow  # a Jupyter kernel with TF, two fits
def test_notebook_fits_are_runs_named_after_it_and_findings_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = child_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env["JPY_SESSION_NAME"] = str(tmp_path / "Leak study.ipynb")
    for key in [k for k in list(__import__("os").environ) if k.startswith("EPOCHWATCH_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.strip()) for c in CELLS])
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    kinds_line = _stream(nb.cells[3], "KINDS")
    assert "host_memory_growth" in kinds_line and "'severity'" in kinds_line and "'evidence'" in kinds_line
    html = next(o for o in nb.cells[3].outputs if o.get("output_type") == "execute_result")["data"][
        "text/html"
    ]
    assert html.startswith("<iframe") and "host_memory_growth" in html

    traces = json.loads(_stream(nb.cells[4], "TRACES"))
    assert len(traces) == 2, traces
    assert all(name.startswith("Leak_study-") for name in traces), traces
    ended = sorted(traces.values(), key=lambda t: t[3])
    assert ended == [["run_end", "completed", [0], 3], ["run_end", "completed", [0], 30]]
