"""Record builders for restore/lineage/compare tests: a healthy parent and its resumed child.

Times are explicit so tests can move a save or a restore around; every builder returns a
plain record, as the hook writes them.
"""

from __future__ import annotations

import copy
from typing import Any

from epochwatch.analysis.run import Run

Record = dict[str, Any]

SHA = "a" * 64
OTHER_SHA = "b" * 64
PATH = "/ckpt/model.keras"


def env(**over: Any) -> Record:
    base = {
        "python": "3.11.7",
        "hostname": "node1",
        "cpu_count": 16,
        "packages": {"tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6"},
        "gpus": [{"index": 0, "name": "NVIDIA H100", "uuid": "GPU-1"}],
        "driver": "550.54",
    }
    base.update(over)
    return base


def run_start(run_id: str, t: float, **env_over: Any) -> Record:
    return {"type": "run_start", "run_id": run_id, "t": t, "schema": 1, "env": env(**env_over)}


def stats(mean: float = 0.0, std: float = 1.0, features: int = 3) -> Record:
    return {
        "source": "arrays",
        "batches": 4,
        "rows": 128,
        "inputs": {
            "x": {
                "dtype": "float32",
                "shape": [features],
                "rows": 128,
                "per": "feature",
                "mean": [mean] * features,
                "std": [std] * features,
                "min": [mean - 3 * std] * features,
                "max": [mean + 3 * std] * features,
            }
        },
    }


def fit_start(
    run_id: str,
    t: float,
    *,
    batch_size: int = 32,
    lr: Any = 0.01,
    optimizer: str = "Adam",
    loss: str = "mse",
    input_stats: Record | None = None,
    trainable: int | None = None,
    params: int | None = None,
    **config: Any,
) -> Record:
    cfg = {"name": "adam", "learning_rate": lr, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}
    cfg.update(config)
    sizes = {k: v for k, v in (("trainable_params", trainable), ("params", params)) if v is not None}
    model = {"model": {"class": "Functional", **sizes}} if sizes else {}
    return {
        **model,
        "type": "fit_start",
        "run_id": run_id,
        "t": t,
        "fit": 0,
        "optimizer": {"class": optimizer, "config": cfg},
        "loss": loss,
        "batch_size": batch_size,
        "input": {"kind": "ndarray"},
        "input_stats": input_stats if input_stats is not None else stats(),
    }


def epoch(
    run_id: str,
    n: int,
    start: float,
    *,
    seconds: float = 10.0,
    loss: float = 1.0,
    iterations: int = 100,
    steps: int = 100,
    batch_size: int = 32,
    lr: float = 0.01,
    fit: int = 0,
) -> Record:
    return {
        "type": "epoch",
        "run_id": run_id,
        "t": start + seconds,
        "epoch": n,
        "fit": fit,
        "source": "keras",
        "start": start,
        "end": start + seconds,
        "seconds": seconds,
        "steps": steps,
        "batch_size": batch_size,
        "metrics": {"loss": loss},
        "lr": lr,
        "iterations": iterations,
    }


def save(
    run_id: str, t: float, *, path: str = PATH, sha: str = SHA, iterations: int = 500, **over: Any
) -> Record:
    rec = {
        "type": "save",
        "run_id": run_id,
        "t": t + 0.01,
        "saved_at": t,
        "path": path,
        "format": "keras",
        "api": "Model.save",
        "bytes": 1000,
        "sha256": sha,
        "optimizer_included": True,
        "iterations": iterations,
        "save_seconds": 0.1,
    }
    rec.update(over)
    return rec


def restore(
    run_id: str, t: float, *, path: str = PATH, sha: str = SHA, iterations: int = 500, **over: Any
) -> Record:
    rec = {
        "type": "restore",
        "run_id": run_id,
        "t": t + 0.01,
        "restored_at": t,
        "path": path,
        "format": "keras",
        "api": "keras.saving.load_model",
        "bytes": 1000,
        "sha256": sha,
        "load_seconds": 0.2,
        "optimizer": {"class": "Adam", "iterations": iterations, "built": True, "variables": 10},
        "iterations": iterations,
        "optimizer_included": True,
        "file_iterations": 500,
        "written_with": {"keras": "3.15.1"},
    }
    rec.update(over)
    return rec


def make_run(records: list[Record], path: Any = None) -> Run:
    run = Run(run_id=records[0]["run_id"], path=path)
    for rec in records:
        run.add(copy.deepcopy(rec))
    return run


def parent_records(run_id: str = "parent", epochs: int = 5, trainable: int | None = None) -> list[Record]:
    """A healthy parent: loss falling 1.0 -> 0.6, 10 s epochs, saved after the last epoch."""
    recs = [run_start(run_id, 1000.0), fit_start(run_id, 1000.5, trainable=trainable)]
    for n in range(epochs):
        recs.append(epoch(run_id, n, 1001.0 + 10 * n, loss=1.0 - 0.1 * n, iterations=100 * (n + 1)))
    recs.append(save(run_id, 1001.0 + 10 * epochs + 0.5, iterations=100 * epochs))
    return recs


def child_records(
    run_id: str = "child",
    *,
    restore_over: dict[str, Any] | None = None,
    fit_over: dict[str, Any] | None = None,
    losses: tuple[float, ...] = (0.55, 0.5, 0.45),
    seconds: tuple[float, ...] = (12.0, 10.0, 10.0),
    start_step: int = 500,
    env_over: dict[str, Any] | None = None,
    epoch_lrs: tuple[float, ...] | None = None,
) -> list[Record]:
    """A clean resume of parent_records(): full state, same data and settings (each epoch at
    the fit's rate, or at `epoch_lrs`: a scheduler's)."""
    recs = [run_start(run_id, 2000.0, **(env_over or {}))]
    recs.append(restore(run_id, 2000.5, **(restore_over or {})))
    recs.append(fit_start(run_id, 2001.0, **(fit_over or {})))
    start = 2002.0
    batch = (fit_over or {}).get("batch_size", 32)
    rate = (fit_over or {}).get("lr", 0.01)
    lrs = (
        list(epoch_lrs)
        if epoch_lrs is not None
        else [rate if isinstance(rate, float) else 0.01] * len(losses)
    )
    for i, (loss, secs) in enumerate(zip(losses, seconds, strict=True)):
        recs.append(
            epoch(
                run_id,
                5 + i,
                start,
                seconds=secs,
                loss=loss,
                iterations=start_step + 100 * (i + 1),
                batch_size=batch,
                lr=lrs[i],
            )
        )
        start += secs
    return recs
