"""Detection on real TensorFlow training: a leak, a retrace storm, a filling directory, a healthy run.

Each run is a fresh interpreter with `import epochwatch.hook` (embedded mode), so the
online analyzer writes `finding` records into the trace while it trains; the test then
checks them against the offline analysis (`analyze`, `epochwatch report`/`check`) of the
same trace. Tiny models, ~0.05 s epochs: a few seconds of training per run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from epochwatch.analysis.engine import analyze
from epochwatch.analysis.run import load_run
from tests.support import (
    TINY_KERAS,
    FinishedRun,
    epochwatch_cli,
    of_type,
    private_env,
    read_single_trace,
    run_python,
    trace_files,
)

DISK = (
    TINY_KERAS
    + """
out = os.environ["EPOCHWATCH_WATCH"]

class Dump(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        with open(os.path.join(out, f"dump-{epoch}.bin"), "wb") as f:
            f.write(os.urandom(3_000_000))

model.fit(x, y, epochs=32, batch_size=64, verbose=0, callbacks=[Dump()])
"""
)

HEALTHY = (
    TINY_KERAS
    + """
model.fit(x, y, epochs=30, batch_size=64, validation_split=0.25, verbose=0)
"""
)

STORM = """
from epochwatch import hook
import tensorflow as tf

w = tf.Variable(tf.ones([4, 1]))

@tf.function
def train_step(x, y, lr):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((tf.matmul(x, w) - y) ** 2)
    w.assign_sub(lr * tape.gradient(loss, w))
    return loss

x = tf.random.normal([32, 4]); y = tf.random.normal([32, 1])
lr = 0.1
for n in range(12):
    with hook.epoch(n):
        for _ in range(5):
            hook.log(loss=train_step(x, y, lr))
    lr *= 0.9  # a Python float that changes every epoch: a new trace every epoch
"""


def _online(records: list[dict[str, Any]]) -> set[tuple[str, str | None, int | None]]:
    return {(f["kind"], f["target"], f["epoch"]) for f in of_type(records, "finding")}


def _offline(tmp_path: Path) -> set[tuple[str, str | None, int | None]]:
    (path,) = trace_files(tmp_path)
    return {(f.kind, f.target, f.epoch) for f in analyze(load_run(path))}


def test_host_memory_growth_from_a_callback_that_keeps_arrays(leak_run: FinishedRun) -> None:
    records = leak_run.records()  # tests.support.LEAK_30, shared with test_console
    online = _online(records)
    assert any(kind == "host_memory_growth" for kind, _, _ in online), online
    assert online == _offline(leak_run.root)
    (path,) = trace_files(leak_run.root)
    report = epochwatch_cli("report", "--format", "json", str(path))
    assert report.returncode == 0, report.stderr
    (finding,) = [
        f for f in json.loads(report.stdout)["runs"][0]["findings"] if f["kind"] == "host_memory_growth"
    ]
    assert 20e6 < finding["evidence"]["slope_per_epoch"] < 30e6
    assert "epochs_to_limit" in finding["evidence"]
    assert epochwatch_cli("check", str(path)).returncode == 1


def test_retrace_storm_names_the_function_and_the_python_float(tmp_path: Path) -> None:
    run_python(STORM, tmp_path, env=private_env(tmp_path))
    records = read_single_trace(tmp_path)
    storms = [f for f in of_type(records, "finding") if f["kind"] == "retrace_storm"]
    assert [f["target"] for f in storms] == ["train_step"]
    f = storms[0]
    assert f["evidence"]["argument"] == "lr" and f["evidence"]["change"] == "value"
    assert "Python float" in f["hint"] and "tf.Variable" in f["hint"]
    assert f["epoch"] <= 6
    assert _online(records) == _offline(tmp_path)


def test_disk_growth_in_a_watched_directory(tmp_path: Path) -> None:
    out = tmp_path / "dumps"
    out.mkdir()
    run_python(DISK, tmp_path, env=private_env(tmp_path, EPOCHWATCH_WATCH=str(out)))
    records = read_single_trace(tmp_path)
    grows = [f for f in of_type(records, "finding") if f["kind"] == "disk_growth" and f["target"] == str(out)]
    assert len(grows) == 1, of_type(records, "finding")
    ev = grows[0]["evidence"]
    assert 2e6 < ev["slope_per_epoch"] < 4e6
    # The free space of the moment judged, from the hook's dirs block (live and in report).
    assert ev["free_source"] == "recorded in the trace" and ev["free_bytes"] > 0
    assert ev["epochs_to_limit"] > 0
    assert "full in about" in grows[0]["title"]
    online = {k for k in _online(records) if k[0] == "disk_growth"}
    assert online == {k for k in _offline(tmp_path) if k[0] == "disk_growth"}


def test_healthy_run_gets_no_warning(tmp_path: Path) -> None:
    run_python(HEALTHY, tmp_path, env=private_env(tmp_path))
    records = read_single_trace(tmp_path)
    assert len(of_type(records, "epoch")) == 30
    loud = [f for f in of_type(records, "finding") if f["severity"] != "info"]
    assert loud == [], [(f["kind"], f["title"]) for f in loud]
    (path,) = trace_files(tmp_path)
    check = epochwatch_cli("check", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
    report = epochwatch_cli("report", str(path))
    assert report.returncode == 0 and "epochs (30" in report.stdout
