"""A restore is paired with a fit only when that fit trains the restored object (issue 23).

A loop that calls `load_model()`, discards the result and fits a new model got
`optimizer_state_not_restored` with a `load_weights` fix the script never calls. The
restore record now names the object it restored into (`model_serial`, the numbering of
`fit_start.model.serial`); the checks that need a resume run only for a fit of that object.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import child_env, of_type, read_single_trace, run_python, trace_files
from tests.trust_support import assert_same_findings

SCRIPT = """
import numpy as np
import epochwatch.hook
import keras

x = np.random.rand(128, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)

def build():
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    m.compile("adam", "mse")
    return m

first = build()
first.fit(x, y, epochs=3, batch_size=16, verbose=0)
first.save("test_model.keras")
for i in range(3):
    loaded = keras.models.load_model("test_model.keras")  # loaded, then discarded
    model = build()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
{tail}
"""

RESUME = """
resumed = keras.models.load_model("test_model.keras")
resumed.fit(x, y, epochs=2, batch_size=16, verbose=0)
"""


def _run(tmp_path: Path, tail: str) -> tuple[list[dict], Path]:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir(exist_ok=True)
    run_python(SCRIPT.format(tail=tail), tmp_path, env=child_env(tmp_path, TMPDIR=str(private_tmp)))
    return read_single_trace(tmp_path), trace_files(tmp_path)[0]


def _serial(fit: dict) -> int:
    return int(fit["model"]["serial"])


def test_a_discarded_load_model_is_paired_with_no_fit(tmp_path: Path) -> None:
    records, path = _run(tmp_path, "")
    found = assert_same_findings(path)
    restores = of_type(records, "restore")
    fitted = {_serial(f) for f in of_type(records, "fit_start")}
    assert len(restores) == 3 and all(isinstance(r.get("model_serial"), int) for r in restores), restores
    assert not {r["model_serial"] for r in restores} & fitted  # none of the loaded models was fitted
    assert ("optimizer_state_not_restored", "test_model.keras") not in found, found
    assert not [k for k, _ in found if k.endswith("_after_restore") or k == "restore_slowdown"], found


def test_a_loaded_model_that_is_fitted_is_its_restore_s_resume(tmp_path: Path) -> None:
    records, path = _run(tmp_path, RESUME)
    assert_same_findings(path)
    last_restore = of_type(records, "restore")[-1]
    last_fit = of_type(records, "fit_start")[-1]
    assert last_restore["model_serial"] == _serial(last_fit)
    # load_model restores the optimizer with the model: no finding about it.
    assert not [f for f in of_type(records, "finding") if f["kind"] == "optimizer_state_not_restored"]
