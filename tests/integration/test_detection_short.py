"""Findings in time on real Keras runs that are short: a leak over 10 epochs, a step
change at epoch 5, a leak that grows and then ends, and healthy 8- and 2-epoch fits.

Each run is a fresh interpreter with `import epochwatch.hook` (embedded mode): the
findings must be in the trace the run wrote (online, before run_end), and the report
must show the same episodes. Tiny models: a few seconds of training per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support import (
    TINY_KERAS,
    of_type,
    private_env,
    read_single_trace,
    report_json,
    run_python,
    trace_files,
)

LEAK_10 = (
    TINY_KERAS
    + """
class Keep(keras.callbacks.Callback):
    kept = []
    def on_epoch_end(self, epoch, logs=None):
        self.kept.append(np.full(5_000_000, float(epoch)))  # 40 MB an epoch, never freed

model.fit(x, y, epochs=10, batch_size=64, verbose=0, callbacks=[Keep()])
"""
)

STEP_15 = (
    TINY_KERAS
    + """
class SlowFrom5(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
    def on_train_batch_begin(self, batch, logs=None):
        time.sleep(0.04 if self.epoch >= 5 else 0.01)  # steps 4x slower from epoch 5 on (sleep-bound)

model.fit(x, y, epochs=15, batch_size=8, verbose=0, callbacks=[SlowFrom5()])
"""
)

EPISODE = (
    TINY_KERAS
    + """
import gc

class GrowThenFree(keras.callbacks.Callback):
    kept = []
    def on_epoch_end(self, epoch, logs=None):
        if epoch <= 5:
            self.kept.append(np.full(3_000_000, 1.0))  # 24 MB an epoch
        elif epoch <= 11:
            self.kept.append(np.full(16_000_000, 1.0))  # then 128 MB an epoch
        else:
            self.kept.clear()  # and then it is all given back
            gc.collect()

model.fit(x, y, epochs=17, batch_size=64, verbose=0, callbacks=[GrowThenFree()])
"""
)


LONG_EPOCHS = """
import time
import epochwatch.hook
import numpy as np
import keras

np.random.seed(0)
x = np.random.rand(6400, 8).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mse")

class KeepPerStep(keras.callbacks.Callback):
    kept = []
    def on_train_batch_begin(self, batch, logs=None):
        self.kept.append(np.ones(65536))  # 0.5 MiB a step, never freed
        time.sleep(0.001)  # long epochs on a fast machine too: 800 steps of 0.6 ms were 0.5 s

model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[KeepPerStep()])  # 800 steps an epoch
"""


def healthy(epochs: int) -> str:
    return TINY_KERAS + f"model.fit(x, y, epochs={epochs}, batch_size=64, validation_split=0.25, verbose=0)\n"


def _before_run_end(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The `kind` findings and their updates written before the run_end record (online)."""
    types = [r["type"] for r in records]
    assert types[-1] == "run_end"
    return [r for r in records[:-1] if r["type"] in ("finding", "finding_update") and r["kind"] == kind]


def test_ten_epoch_leak_is_found_while_it_trains(tmp_path: Path) -> None:
    run_python(LEAK_10, tmp_path, env=private_env(tmp_path))
    records = read_single_trace(tmp_path)
    found = _before_run_end(records, "host_memory_growth")
    assert found, of_type(records, "finding")
    first = found[0]
    assert first["epoch"] <= 8
    assert 30e6 < first["evidence"]["slope_per_epoch"] < 50e6
    # Severity by consequence (docs/findings.md): 40 MB an epoch on a ~0.8 GB process over a
    # 10-epoch plan is near "half the process by the planned end", so either side of it; the
    # finding must say the horizon it was judged on and what it projects there.
    ev = first["evidence"]
    assert ev["horizon"] == "plan" and "level_at_horizon" in ev, ev
    assert first["severity"] in ("info", "warning", "critical")
    (path,) = trace_files(tmp_path)
    kinds = {f["kind"] for f in report_json(path)["runs"][0]["findings"]}
    assert "host_memory_growth" in kinds


def test_leak_inside_long_epochs_is_found_before_the_run_ends(tmp_path: Path) -> None:
    run_python(LONG_EPOCHS, tmp_path, env=private_env(tmp_path))
    records = read_single_trace(tmp_path)
    intervals = of_type(records, "interval")
    assert len(intervals) >= 6, len(intervals)
    assert all(r["steps"] > 0 and r["host"]["rss_bytes"] > 0 for r in intervals)
    # The CPU since the last interval, and the threads' wait for one (a busier host's part).
    assert all(r["host"]["cpu_seconds"] >= 0 and r["host"]["cpu_wait_seconds"] >= 0 for r in intervals[1:])
    found = _before_run_end(records, "host_memory_growth")
    assert found, of_type(records, "finding")
    # Found while it trained: before the last epoch's record.
    last_epoch = max(i for i, r in enumerate(records) if r["type"] == "epoch")
    assert records.index(found[0]) < last_epoch
    ev = found[0]["evidence"]
    assert ev["unit"] == "interval" and ev["slope_per_interval"] > 0


def test_step_change_is_a_slowdown_with_its_onset(tmp_path: Path) -> None:
    run_python(STEP_15, tmp_path, env=private_env(tmp_path))
    records = read_single_trace(tmp_path)
    found = _before_run_end(records, "slowdown")
    assert found, of_type(records, "finding")
    ev = found[0]["evidence"]
    assert ev["shape"] == "step" and ev["onset_epoch"] == 5
    assert 2.0 < ev["ratio"] < 6.0
    assert "slower from epoch 6" in found[0]["title"]  # onset_epoch 5 (0-based): Epoch 6/N in Keras
    assert found[0]["epoch"] <= 9


def test_a_leak_that_grows_is_updated_and_one_that_ends_says_so(tmp_path: Path) -> None:
    run_python(EPISODE, tmp_path, env=private_env(tmp_path))
    records = read_single_trace(tmp_path)
    found = _before_run_end(records, "host_memory_growth")
    assert len(found) >= 3, found  # first report, at least one update, the end
    first, last = found[0], found[-1]
    assert first["type"] == "finding" and "update" not in first
    assert all(f["type"] == "finding_update" for f in found[1:])
    updates = [f for f in found if f.get("update") and "ended_epoch" not in f]
    assert updates and updates[0]["evidence"]["current"] > 1.25 * first["evidence"]["current"]
    assert all(f["epoch"] == first["epoch"] for f in found)  # one episode, first seen then
    assert (
        last["ended_epoch"] >= 12 and f"recovered at epoch {last['ended_epoch'] + 1}" in last["title"]
    )  # 1-based in text
    (path,) = trace_files(tmp_path)
    (reported,) = [f for f in report_json(path)["runs"][0]["findings"] if f["kind"] == "host_memory_growth"]
    assert reported["ended_epoch"] == last["ended_epoch"] and "recovered at epoch" in reported["title"]
    assert reported["update"] >= 2


def test_healthy_short_fits_get_no_warning(tmp_path: Path) -> None:
    for epochs in (8, 2):
        out = tmp_path / f"e{epochs}"
        out.mkdir()
        run_python(healthy(epochs), out, env=private_env(out))
        records = read_single_trace(out)
        assert len(of_type(records, "epoch")) == epochs
        loud = [f for f in of_type(records, "finding") if f["severity"] != "info"]
        assert loud == [], loud
        (path,) = trace_files(out)
        assert [f for f in report_json(path)["runs"][0]["findings"] if f["severity"] != "info"] == []
