"""Distributed jobs: the traces of one job's workers put together, and the job-level findings.

Each worker's trace is analysed on its own (it may come from another host, and `report
--jobs` analyses files in worker processes); what the job view needs from it is reduced
there to a small plain dict (`worker_view`): the worker's identity from the fingerprint's
`distributed` block and its per-epoch `seconds` and `collective.seconds`. `build_jobs`
groups the views by `job_id`, splits reruns that reused the same id (a worker name seen
twice starts a new attempt), aligns the workers' epochs by position (a synchronous job
runs the same epochs everywhere) and runs the job detectors (detectors/straggler.py).

A job appears in the report when it has two or more workers, or one worker of a job that
declares more (so a missing trace is visible).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from epochwatch.analysis.detectors.straggler import detect_job
from epochwatch.analysis.files import Analyzed
from epochwatch.analysis.findings import sort_findings
from epochwatch.analysis.job import Job

# Worker facts compared between the straggler and the others (mean over its slow epochs):
# name -> (path into an epoch record, per second of epoch time?).
FACTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "cpu_share": (("host", "cpu_seconds"), True),
    "input_wait_share": (("input_wait_seconds",), True),
    "swap_bytes": (("host", "swap_bytes"), False),
}
MAX_WORKERS = 4096


def _text(value: Any, limit: int = 200) -> str | None:
    if value is None:
        return None
    text = "".join(ch for ch in str(value)[: limit * 2] if ch.isprintable())[:limit]
    return text or None


def _rounded(values: Iterable[float]) -> list[float | None]:
    return [None if v != v else round(v, 6) for v in values]


def worker_view(an: Analyzed) -> dict[str, Any] | None:
    """What the job analysis needs from one analysed trace; None for a run outside any job."""
    start = an.run.start or {}
    env = start.get("env") if isinstance(start.get("env"), Mapping) else {}
    assert isinstance(env, Mapping)
    ident = env.get("distributed")
    if not isinstance(ident, Mapping) or not _text(ident.get("job_id")):
        return None
    series = an.run.series
    if series.offset:
        return None  # a trimmed series (online use) has no whole history to align
    listed = env.get("gpus")
    gpus: list[Any] = listed if isinstance(listed, list) else []
    rank = ident.get("rank")
    world = ident.get("world_size")
    return {
        "run_id": an.run.run_id,
        "path": str(an.path),
        "job_id": _text(ident.get("job_id")),
        "job_source": _text(ident.get("job_source"), 40),
        "worker": _text(ident.get("worker"), 80) or _text(an.run.run_id),
        "rank": rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
        "world_size": world if isinstance(world, int) and not isinstance(world, bool) else None,
        "hostname": _text(env.get("hostname")),
        "gpus": [_text(g.get("name"), 80) for g in gpus[:16] if isinstance(g, Mapping)],
        "start": start.get("t") if isinstance(start.get("t"), int | float) else None,
        "epochs": series.count,
        "epoch_numbers": _rounded(series.cols["epoch"]),
        "seconds": _rounded(series.cols["seconds"]),
        "collective": _rounded(series.cols["collective"]),
        "warm": [int(w) for w in series.warm],
        "facts": _facts(an),
        "slowdown": [f.to_dict() for f in an.findings if f.kind == "slowdown"][:2],
    }


def _facts(an: Analyzed) -> list[dict[str, float]]:
    """Per kept epoch record (the newest ones): the FACTS, for 'what differs on it'."""
    out: list[dict[str, float]] = []
    for rec in an.run.epochs[-200:]:
        seconds = rec.get("seconds")
        row: dict[str, float] = {}
        for name, (path, per_second) in FACTS.items():
            cur: Any = rec
            for part in path:
                cur = cur.get(part) if isinstance(cur, Mapping) else None
            if isinstance(cur, Mapping):
                cur = cur.get("seconds")
            if isinstance(cur, int | float) and not isinstance(cur, bool) and math.isfinite(cur):
                if per_second:
                    if isinstance(seconds, int | float) and seconds > 0:
                        row[name] = float(cur) / float(seconds)
                else:
                    row[name] = float(cur)
        gpu = rec.get("gpu")
        devices = gpu.get("devices") if isinstance(gpu, Mapping) else None
        if isinstance(devices, list) and devices:
            throttled = [d for d in devices if isinstance(d, Mapping) and d.get("throttle_reasons")]
            row["gpu_throttled"] = 1.0 if throttled else 0.0
        out.append(row)
    return out


def build_jobs(views: Iterable[Mapping[str, Any]]) -> list[Job]:
    """The jobs among the views, each with its job-level findings: views grouped by job id,
    where a worker name seen twice under one id starts another attempt."""
    by_id: dict[str, list[Mapping[str, Any]]] = {}
    for v in views:
        by_id.setdefault(str(v["job_id"]), []).append(v)
    jobs: list[Job] = []
    for job_id, members in by_id.items():
        members.sort(key=lambda v: (v.get("start") or 0.0, v.get("rank") or 0, v["run_id"]))
        attempts: list[list[Mapping[str, Any]]] = []
        for v in members:
            current = attempts[-1] if attempts else None
            if (
                current is None
                or any(w["worker"] == v["worker"] for w in current)
                or len(current) >= MAX_WORKERS
            ):
                attempts.append([v])
            else:
                current.append(v)
        for attempt in attempts:
            workers = sorted(attempt, key=lambda v: (v.get("rank") is None, v.get("rank") or 0, v["worker"]))
            declared = [w["world_size"] for w in workers if isinstance(w.get("world_size"), int)]
            world = max(declared) if declared else None
            if len(workers) < 2 and not (world and world > 1):
                continue
            job = Job(job_id, workers[0].get("job_source"), [dict(w) for w in workers], world)
            job.findings = sort_findings(list(detect_job(job)))
            jobs.append(job)
    return jobs


def job_entry(job: Job) -> dict[str, Any]:
    """The report JSON's entry for one job (the contract's `jobs` list)."""
    workers = []
    for w in job.workers:
        seconds = [v for v in w["seconds"] if v is not None]
        collective = [v for v in w["collective"] if v is not None]
        entry = {
            "run_id": w["run_id"],
            "worker": w["worker"],
            "rank": w.get("rank"),
            "hostname": w.get("hostname"),
            "path": w.get("path"),
            "epochs": w["epochs"],
            "epoch_seconds_total": round(sum(seconds), 6),
            "collective_seconds_total": round(sum(collective), 6) if collective else None,
        }
        workers.append({k: v for k, v in entry.items() if v is not None})
    out: dict[str, Any] = {
        "job_id": job.job_id,
        "source": job.source,
        "world_size": job.world_size,
        "workers": workers,
        "run_ids": [w["run_id"] for w in job.workers],
        "complete": job.world_size is None or len(job.workers) >= job.world_size,
        "epochs": job.epochs,
        "findings": [{**f.to_dict(), "source": "analysis"} for f in job.findings],
    }
    return {k: v for k, v in out.items() if v is not None}


def jobs_report(views: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The report's top-level `jobs` list from the worker views of every run read."""
    return [job_entry(job) for job in build_jobs(views)]
