"""Findings where users already look (issue 14): TensorBoard, W&B (offline), MLflow (file store).

One real leaking Keras fit with `keras.callbacks.TensorBoard(logdir)`, inside an offline
W&B run and an active MLflow run: the log directory's event files hold the finding as a
text summary (read back with TensorBoard's own EventAccumulator), the W&B run's summary
holds it, the MLflow run has its tag and the findings artifact. Each tool is skipped when
it is not installed here; each exporter is off by its own setting.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.support import KEEP_EVERYTHING, TINY_KERAS, child_env, run_python

pytest.importorskip("tensorboard")

HAVE_WANDB = importlib.util.find_spec("wandb") is not None
HAVE_MLFLOW = importlib.util.find_spec("mlflow") is not None

SCRIPT = (
    TINY_KERAS
    + KEEP_EVERYTHING
    + """
use_wandb, use_mlflow, epochs = sys.argv[1] == "1", sys.argv[2] == "1", int(sys.argv[3])
if use_wandb:
    import wandb
    wandb.init(project="ew", dir=os.getcwd(), mode="offline")
if use_mlflow:
    import mlflow
    mlflow.set_tracking_uri("file://" + os.path.join(os.getcwd(), "mlruns"))
    run = mlflow.start_run()
    open("mlflow_run_id", "w").write(run.info.run_id)
model.fit(x, y, epochs=epochs, batch_size=64, verbose=0,
          callbacks=[KeepEverything(), keras.callbacks.TensorBoard(os.path.join(os.getcwd(), "logs"))])
if use_mlflow:
    mlflow.end_run()
if use_wandb:  # what the run's summary holds, read back through W&B's own API
    summary = {k: wandb.run.summary[k] for k in wandb.run.summary.keys() if k.startswith("epochwatch/")}
    open("wandb_summary.json", "w").write(__import__("json").dumps(summary))
    wandb.finish()
"""
)


def _texts(logdir: Path) -> dict[str, list[str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[str]] = {}
    for events in logdir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent), size_guidance={"tensors": 0})
        acc.Reload()
        for tag in acc.Tags().get("tensors", []):
            for event in acc.Tensors(tag):
                values = [v.decode() for v in event.tensor_proto.string_val]
                out.setdefault(tag, []).extend(values)
    return out


def _scalars(logdir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for events in logdir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent), size_guidance={"tensors": 0})
        acc.Reload()
        tags |= {t for t in acc.Tags().get("tensors", []) if t.startswith("epochwatch/") and "_" in t}
    return tags


@pytest.mark.slow  # W&B and MLflow imported beside TF
def test_a_leak_reaches_tensorboard_wandb_and_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the local file store is what we test against
    env = child_env(tmp_path, WANDB_MODE="offline", WANDB_SILENT="true", XDG_CACHE_HOME=str(tmp_path / "c"))
    script = SCRIPT.replace("sys.argv[1]", repr("1" if HAVE_WANDB else "0"))
    script = script.replace("sys.argv[2]", repr("1" if HAVE_MLFLOW else "0")).replace("sys.argv[3]", "30")
    proc = run_python(script, tmp_path, env=env)
    assert "export disabled" not in proc.stderr, proc.stderr[-3000:]  # no exporter failed

    texts = _texts(tmp_path / "logs")
    leak = texts.get("epochwatch/host_memory_growth")
    assert leak and "host memory grows" in leak[0] and "Fix:" in leak[0], texts
    assert {"epochwatch/overhead_seconds", "epochwatch/rss_bytes"} <= _scalars(tmp_path / "logs")

    if HAVE_WANDB:
        assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))  # the offline run was kept
        doc = json.loads((tmp_path / "wandb_summary.json").read_text())
        assert doc["epochwatch/host_memory_growth"] in ("warning", "critical")
        assert doc["epochwatch/findings"] >= 1
    if HAVE_MLFLOW:
        import mlflow

        run_id = (tmp_path / "mlflow_run_id").read_text()
        client = mlflow.MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
        run = client.get_run(run_id)
        assert run.data.tags["epochwatch.host_memory_growth"] in ("warning", "critical")
        # The file store keeps artifacts as plain files (downloading them starts a thread pool here).
        artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
        kinds = [
            f["kind"] for f in json.loads((artifacts / "epochwatch/findings.json").read_text())["findings"]
        ]
        assert "host_memory_growth" in kinds


def test_each_exporter_is_off_by_its_setting(tmp_path: Path) -> None:
    env = child_env(tmp_path, EPOCHWATCH_TENSORBOARD="0", XDG_CACHE_HOME=str(tmp_path / "c"))
    script = SCRIPT.replace("sys.argv[1]", "'0'").replace("sys.argv[2]", "'0'").replace("sys.argv[3]", "2")
    run_python(script, tmp_path, env=env)
    assert (tmp_path / "logs" / "train").is_dir()  # Keras' own logs are there
    assert not (tmp_path / "logs" / "epochwatch").exists()
