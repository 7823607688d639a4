"""Fits in a loop on real Keras: a k-fold/sweep loop that builds a model every iteration.

Each iteration is one `hook.epoch(n)` of the loop with the fit nested in it (the loop's
epoch numbers are kept; the fit's epochs are marked `loop_epoch`), and the fits are
judged as a sequence: the `models_in_loop` finding with the fix, and, when the loop
already calls keras.backend.clear_session(), the advice that is left (a subprocess per
trial) instead of the same advice again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import of_type, private_env, read_single_trace, run_python

pytestmark = pytest.mark.slow  # 25 models built and fitted per run, two runs

LOOP = """
import gc
import numpy as np
import keras
from epochwatch import hook

CLEAR = {clear}
x = np.random.rand(64, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)
for n in range(25):
    with hook.epoch(n):
        if CLEAR:
            keras.backend.clear_session()
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
        model.compile("adam", "mse")
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
"""


def _run(tmp_path: Path, clear: bool) -> list[dict]:
    # 25 models built: on a loaded 2-core machine the default 300 s was seen to run out
    run_python(LOOP.format(clear=clear), tmp_path, env=private_env(tmp_path), timeout=590)
    return read_single_trace(tmp_path)


def test_a_model_built_every_iteration_is_models_in_loop_with_the_fix(tmp_path: Path) -> None:
    records = _run(tmp_path, clear=False)
    loop = [r for r in of_type(records, "epoch") if r["source"] == "loop"]
    nested = [r for r in of_type(records, "epoch") if "loop_epoch" in r]
    assert [r["epoch"] for r in loop] == list(range(25))  # the loop's own epoch numbers
    assert [r["loop_epoch"] for r in nested] == list(range(25)) and all(r["epoch"] == 0 for r in nested)
    found = [f for f in of_type(records, "finding") if f["kind"] == "models_in_loop"]
    assert found, of_type(records, "finding")
    f = found[0]
    ev = f["evidence"]
    assert ev["models"] == ev["fits"] >= 5 and ev["rss_slope_per_fit"] > 1024 * 1024
    assert f["epoch"] < 24  # found while the loop ran, at the loop's own epoch number
    assert "clear_session()" in f["hint"] and "gc.collect()" in f["hint"] and "subprocess" in f["hint"]
    assert f["evidence"]["clear_session_every_iteration"] is False


def test_when_clear_session_is_already_called_the_advice_moves_on(tmp_path: Path) -> None:
    records = _run(tmp_path, clear=True)
    fits = of_type(records, "fit_start")
    assert fits[-1]["clear_session_calls"] == 25
    # Keras 3.15 / TF 2.21 still keeps about 3.7 MiB per iteration of this model after clear_session().
    found = [f for f in of_type(records, "finding") if f["kind"] == "models_in_loop"]
    assert found, of_type(records, "finding")
    f = found[0]
    assert f["evidence"]["clear_session_every_iteration"] is True
    assert "already called" in f["title"]
    # A leak that keeps growing is never said to have ended (a slowdown that a loaded machine
    # caused may come and go: not what this run is about).
    leaks = ("models_in_loop", "host_memory_growth")
    assert not [r for r in of_type(records, "finding_update") if "ended_epoch" in r and r["kind"] in leaks]
    assert "already called" in f["hint"] and "subprocess" in f["hint"]
