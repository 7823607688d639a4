"""The script's own gc.collect() / clear_session() calls, timed: cleanup_in_loop.

keras#13118's server (clear_session() and gc.collect() after every predict, 10x slower) and a
fit whose callback collects garbage after every batch; a loop of fits that clears the session
between fits, as models_in_loop advises, is no such loop.
"""

from __future__ import annotations

from pathlib import Path

from tests.support import child_env, latest_findings, of_type, read_single_trace, report_json, run_python

SERVE = """
import gc
import epochwatch.hook
import numpy as np, keras

model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
x = np.random.rand(8, 16).astype("float32")
cache = [{"id": i} for i in range(400_000)]  # a server's objects: what each collection walks
for request in range(15):
    model.predict(x, verbose=0)
    keras.backend.clear_session()
    gc.collect()  # COLLECT
"""

BATCH_GC = """
import gc
import epochwatch.hook
import numpy as np, keras

class Collect(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        gc.collect()  # EVERY BATCH

x = np.random.rand(160, 16).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mse")
model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[Collect()])
"""

FITS_CLEARED = """
import gc
import epochwatch.hook
import numpy as np, keras

x = np.random.rand(256, 16).astype("float32")
y = x.sum(axis=1, keepdims=True)
for fold in range(3):
    keras.backend.clear_session()
    gc.collect()
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
"""


def _cleanups(tmp_path: Path, code: str, **env: str) -> tuple[list[dict], list[dict]]:
    run_python(code, tmp_path, env=child_env(tmp_path, **env))
    records = read_single_trace(tmp_path)
    found = [f for f in latest_findings(records) if f["kind"] == "cleanup_in_loop"]
    return records, found


def test_a_server_that_clears_the_session_and_collects_per_request_is_told_so(tmp_path: Path) -> None:
    records, found = _cleanups(tmp_path, SERVE, EPOCHWATCH_WINDOW_CALLS="3")
    windows = of_type(records, "epoch")
    assert all(w["cleanup"]["gc.collect"]["calls"] >= 3 for w in windows[1:]), [
        w.get("cleanup") for w in windows
    ]
    assert windows[-1]["cleanup"]["gc.collect"]["where"] == "train_script.py:12 <module>"
    (finding,) = found
    assert finding["severity"] == "warning", finding["title"]
    title = finding["title"]
    assert "`clear_session()` and `gc.collect()`" in title or "`gc.collect()` and `clear_session()`" in title
    assert "called after every inference call" in title, title
    assert (
        "train_script.py:12" in title
        and "traces each clear_session() makes the next call build again" in title
    ), title
    assert "per request" in finding["hint"]
    # The report says what the live run said.
    doc = report_json(tmp_path / "traces", env=child_env(tmp_path))
    (said,) = [f for f in doc["runs"][0]["findings"] if f["kind"] == "cleanup_in_loop"]
    assert said["title"] == title


def test_a_callback_collecting_garbage_every_batch_is_told_so(tmp_path: Path) -> None:
    _records, found = _cleanups(tmp_path, BATCH_GC)
    (finding,) = found
    assert "`gc.collect()` called every step" in finding["title"], finding["title"]
    assert "train_script.py:8 on_train_batch_end" in finding["title"], finding["title"]
    assert finding["evidence"]["cleanups"]["gc.collect"]["calls"] == 15  # 5 steps in each of 3 epochs


def test_a_loop_of_fits_clearing_the_session_between_fits_is_not(tmp_path: Path) -> None:
    records, found = _cleanups(tmp_path, FITS_CLEARED)
    assert found == []
    # The calls were seen (in each fit's first epoch), and are no cost inside the epochs.
    firsts = [e for e in of_type(records, "epoch") if e["epoch"] == 0]
    assert [e["cleanup"]["clear_session"]["calls"] for e in firsts] == [1, 1, 1]
