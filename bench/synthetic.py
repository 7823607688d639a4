"""Synthetic traces that follow docs/trace-format.md, for tests and benchmarks.

Real training is slow and cannot be told to leak 1% per epoch; the detectors are tested
and tuned on records built here, and on a few real TF runs (tests/integration).

Not part of the installed package: the benchmarks import it as `synthetic` (their own
directory is on sys.path when run as scripts), the tests as `bench.synthetic` (pytest puts
the repository root on sys.path, as tests/ is a package).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from epochwatch.trace.writer import dumps_line

GIB = 1024**3
MIB = 1024**2
T0 = 1_800_000_000.0


def run_start(
    run_id: str = "synthetic",
    *,
    epochs: int | None = None,
    memory_total: int = 16 * GIB,
    memory_limit: int | None = None,
    cpu_count: int = 8,
    gpus: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": "3.11.7",
        "platform": "Linux-synthetic",
        "hostname": "synthetic-host",
        "cpu_count": cpu_count,
        "memory_total_bytes": memory_total,
        "packages": {"tensorflow": "2.21.0", "keras": "3.15.0", "numpy": "2.4.6"},
    }
    if memory_limit is not None:
        env["memory_limit_bytes"] = memory_limit
    if gpus:
        env["gpus"] = gpus
    rec: dict[str, Any] = {
        "type": "run_start",
        "run_id": run_id,
        "t": T0,
        "schema": 1,
        "epochwatch": "0.1.0",
        "mode": "embedded",
        "env": env,
    }
    if epochs is not None:
        rec["training"] = {
            "fit": 0,
            "model": {
                "name": "model",
                "class": "Sequential",
                "params": 1234,
                "trainable_params": 1234,
                "layers": 3,
            },
            "optimizer": {"class": "Adam", "config": {"learning_rate": 0.001}},
            "loss": "mse",
            "batch_size": 32,
            "epochs": epochs,
            "initial_epoch": 0,
            "steps_per_epoch": 10,
        }
    return rec


def epoch_record(run_id: str, i: int, start: float, seconds: float, **fields: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "type": "epoch",
        "run_id": run_id,
        "t": start + seconds,
        "epoch": i,
        "source": "keras",
        "fit": 0,
        "start": start,
        "end": start + seconds,
        "seconds": seconds,
        "overhead_seconds": 0.0005,
        "steps": 10,
        "step_seconds": {"min": seconds / 12, "median": seconds / 10, "p90": seconds / 9, "max": seconds / 8},
    }
    rec.update(fields)
    return rec


def host_block(
    rss: float,
    *,
    total: float = 16 * GIB,
    swap: float = 0,
    cpu: float | None = None,
    available: float | None = None,
    sys_swap: float = 0,
    limit: float | None = None,
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "rss_bytes": int(rss),
        "swap_bytes": int(swap),
        "threads": 20,
        "open_fds": 12,
        "sys_total_bytes": int(total),
        "sys_available_bytes": int(available if available is not None else total / 2),
        "sys_swap_used_bytes": int(sys_swap),
    }
    if cpu is not None:
        block["cpu_seconds"] = cpu
    if limit is not None:
        block["memory_limit_bytes"] = int(limit)
    return block


def trace(
    n: int,
    make: Callable[[int], Mapping[str, Any]],
    *,
    run_id: str = "synthetic",
    planned: int | None = None,
    ended: str | None = "completed",
    start_fields: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """run_start, n epochs (make(i) gives each epoch's fields, `seconds` included), run_end."""
    out = [run_start(run_id, epochs=planned, **(start_fields or {}))]
    t = T0 + 1.0
    for i in range(n):
        fields = dict(make(i))
        seconds = float(fields.pop("seconds", 1.0))
        out.append(epoch_record(run_id, i, t, seconds, **fields))
        t += seconds
    if ended is not None:
        out.append(
            {"type": "run_end", "run_id": run_id, "t": t, "ended": ended, "epochs": n, "seconds": t - T0}
        )
    return out


def write(path: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("wb") as fh:
        for rec in records:
            fh.write(dumps_line(dict(rec)))
    return p


def noisy(rng: random.Random, level: float, cv: float) -> float:
    """level times log-normal noise with coefficient of variation about `cv`."""
    return level * math.exp(rng.gauss(0.0, cv))
