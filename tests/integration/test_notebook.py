"""A real notebook, run by nbclient in a real ipykernel (issue 14: in Python and notebooks).

The kernel is told its notebook the way Jupyter Server tells it (JPY_SESSION_NAME), then
the way VS Code does (`__vsc_ipynb_file__` in the user namespace). Two fits in one kernel,
the first leaking: each is a run of its own, named after the notebook as the kernel knows
it then, and each trace ends with run_end while the kernel still lives (checked from inside
the kernel, by its last cell). `hook.findings()` after the second fit still holds the first
fit's finding, as report-JSON dicts grouped by fit, and displays as the HTML report of both
fits in a frame that takes its content's height.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import child_env

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

CELLS = [
    """
import json
import epochwatch.hook
from epochwatch import hook
import numpy as np
import keras

np.random.seed(0)
x = np.random.rand(256, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mse")
""",
    """
class KeepEverything(keras.callbacks.Callback):
    kept = []
    def on_epoch_end(self, epoch, logs=None):
        self.kept.append(np.full(3_000_000, float(epoch)))  # 24 MB a epoch, never freed

# As VS Code sets it; the next run's id is drawn when this fit ends (its own was at import).
__vsc_ipynb_file__ = "/home/u/Second look.ipynb"
model.fit(x, y, epochs=30, batch_size=64, verbose=0, callbacks=[KeepEverything()]);
KeepEverything.kept.clear()
""",
    "model.fit(x, y, epochs=3, batch_size=64, verbose=0);",
    """
found = hook.findings()
print("KINDS", sorted({f["kind"] for f in found}), sorted(found[0]) if found else None)
print("FITS", json.dumps({run: sorted(f["kind"] for f in fs) for run, fs in found.by_fit().items()}))
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
    assert "640px" not in html and "scrollHeight" in html  # the frame takes its page's height
    fits = json.loads(_stream(nb.cells[3], "FITS"))
    leaking = [run for run, kinds in fits.items() if "host_memory_growth" in kinds]
    assert len(leaking) == 1 and leaking[0].startswith("Leak_study-"), fits  # the first fit's, kept

    traces = json.loads(_stream(nb.cells[4], "TRACES"))
    assert len(traces) == 2, traces
    named = sorted((t[3], name.split("-")[0]) for name, t in traces.items())
    assert named == [(3, "Second_look"), (30, "Leak_study")], traces
    ended = sorted(traces.values(), key=lambda t: t[3])
    assert ended == [["run_end", "completed", [0], 3], ["run_end", "completed", [0], 30]]
