"""Series and findings where users already look (issues 14, 26): TensorBoard, W&B
(offline), MLflow (file store).

One real leaking Keras fit with `keras.callbacks.TensorBoard(logdir)`, inside an offline
W&B run and an active MLflow run: the log directory's event files hold the finding as a
text summary with its evidence in units and the run's series as scalars, one per epoch
(read back with TensorBoard's own EventAccumulator); the W&B run's log holds the series
(read back from its offline transaction log) and its summary the finding; the MLflow run
has the series as metrics, its tag, the findings artifact and the HTML report. Each tool
is skipped when it is not installed here; each exporter is off by its own setting.
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
    from epochwatch import hook

    hook.findings()  # detection caught up with the last epochs (on a loaded machine it lags)
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


def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} of epochwatch's scalars."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    out: dict[str, list[tuple[int, float]]] = {}
    for events in logdir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent), size_guidance={"tensors": 0})
        acc.Reload()
        for tag in acc.Tags().get("tensors", []):
            for event in acc.Tensors(tag):
                value = make_ndarray(event.tensor_proto)
                if tag.startswith("epochwatch/") and value.dtype.kind == "f":
                    out.setdefault(tag, []).append((event.step, float(value)))
    return out


def _wandb_records(run_file: Path) -> list[bytes]:
    """The records of W&B's transaction log (a LevelDB-style log: a 7-byte file header,
    32 KiB blocks, each chunk a 7-byte header: CRC, little-endian length, type 1 full,
    2 first, 3 middle, 4 last); wandb 0.31 ships no Python reader of its own."""
    data, block = run_file.read_bytes(), 32768
    assert data[:4] == b":W&B", data[:8]
    records, pos, parts = [], 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the block's tail is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            records.append(parts)
    return records


def _wandb_history(run_file: Path) -> list[dict[str, object]]:
    """The rows `run.log` wrote, read from the offline run's log with W&B's own protobuf."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for data in _wandb_records(run_file):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            )
    return rows


def _grows(values: list[float]) -> bool:
    return len(values) == 30 and values[-1] - values[0] > 300  # MiB: 24 MB an epoch, kept


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
    assert "MiB" in leak[0]  # evidence in units, not raw byte counts
    scalars = _scalars(tmp_path / "logs")
    rss = sorted(scalars.get("epochwatch/host_rss_mib", []))
    assert [step for step, _ in rss] == list(range(30)) and _grows([v for _, v in rss]), scalars.keys()
    for name in ("epoch_seconds", "step_seconds", "retraces", "overhead_seconds"):
        assert len(scalars.get(f"epochwatch/{name}", [])) == 30, (name, scalars.keys())

    if HAVE_WANDB:
        (run_file,) = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")  # the offline run was kept
        rows = [r for r in _wandb_history(run_file) if "epochwatch/host_rss_mib" in r]
        assert [r["epochwatch/epoch"] for r in rows] == list(range(1, 31)), rows[:2]
        assert _grows([float(r["epochwatch/host_rss_mib"]) for r in rows])  # type: ignore[arg-type]
        assert all("epochwatch/step_seconds" in r and "epochwatch/overhead_seconds" in r for r in rows)
        assert list(run_file.parent.glob("files/epochwatch-report.html"))
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
        history = client.get_metric_history(run_id, "epochwatch/host_rss_mib")
        assert sorted(m.step for m in history) == list(range(30))
        assert _grows([m.value for m in sorted(history, key=lambda m: m.step)])
        assert len(client.get_metric_history(run_id, "epochwatch/step_seconds")) == 30
        page = (artifacts / "epochwatch/epochwatch-report.html").read_text()
        assert page.startswith("<!DOCTYPE html>") and "host_memory_growth" in page


def test_each_exporter_is_off_by_its_setting(tmp_path: Path) -> None:
    env = child_env(tmp_path, EPOCHWATCH_TENSORBOARD="0", XDG_CACHE_HOME=str(tmp_path / "c"))
    script = SCRIPT.replace("sys.argv[1]", "'0'").replace("sys.argv[2]", "'0'").replace("sys.argv[3]", "2")
    run_python(script, tmp_path, env=env)
    assert (tmp_path / "logs" / "train").is_dir()  # Keras' own logs are there
    assert not (tmp_path / "logs" / "epochwatch").exists()
