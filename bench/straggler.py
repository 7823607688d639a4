"""How quiet and how sensitive the job-level straggler detector is, on simulated synchronous jobs.

`python bench/straggler.py` (seeded, a few seconds). Each epoch every worker does its own
work (outside the step), then its part of the step (compute), and leaves the all-reduce when
the last one has arrived plus the communication time; log-normal noise of coefficient of
variation `cv` on each part, per worker and epoch (per-epoch noise is the worst case: per-step
noise averages out over an epoch's steps). Prints how many of 200 balanced jobs get a
`straggler`, and how many jobs with one worker slower from epoch 15 on get it named.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from epochwatch.analysis.findings import Finding
from epochwatch.analysis.jobs import build_jobs

EPOCHS, JOBS = 30, 200
OWN, COMPUTE, COMM = 0.05, 0.2, 0.05


def job(workers: int, own: Callable[[int, int], float], seed: int, cv: float) -> list[Finding]:
    r = random.Random(seed)

    def nz(level: float) -> float:
        return level * math.exp(r.gauss(0, cv))

    table = []
    for i in range(EPOCHS):
        owns = [nz(own(w, i)) for w in range(workers)]
        arrive = [o + nz(COMPUTE) for o in owns]
        end = max(arrive) + nz(COMM)
        table.append([(end, end - o) for o in owns])  # (epoch seconds, collective seconds)
    views: list[dict[str, Any]] = []
    for w in range(workers):
        views.append(
            {
                "run_id": f"r{w}",
                "job_id": "j",
                "worker": f"worker:{w}",
                "rank": w,
                "world_size": workers,
                "start": 0,
                "epochs": EPOCHS,
                "seconds": [table[i][w][0] for i in range(EPOCHS)],
                "collective": [table[i][w][1] for i in range(EPOCHS)],
                "warm": [2] + [0] * (EPOCHS - 1),
                "facts": [],
                "slowdown": [],
                "epoch_numbers": list(range(EPOCHS)),
            }
        )
    return build_jobs(views)[0].findings


def main() -> int:
    epoch = OWN + COMPUTE + COMM
    print(f"{JOBS} jobs each, {EPOCHS} epochs of about {epoch:.2f} s")
    print("| jobs | cv | workers | straggler found |")
    print("|---|---:|---:|---:|")
    for cv in (0.1, 0.2, 0.3):
        for workers in (2, 4, 8):
            found = sum(bool(job(workers, lambda w, i: OWN, s, cv)) for s in range(JOBS))
            print(f"| balanced | {cv} | {workers} | {found}/{JOBS} |")
    for extra in (0.03, 0.05, 0.1):
        for cv in (0.1, 0.2):
            named, since = 0, []
            for s in range(JOBS):
                slow = extra

                def own(w: int, i: int, slow: float = slow) -> float:
                    return OWN + (slow if w == 1 and i >= 15 else 0.0)

                f = job(4, own, s, cv)
                if f and f[0].kind == "straggler" and f[0].target == "worker:1":
                    named += 1
                    since.append(f[0].evidence["since_epoch"])
            since.sort()
            at = since[len(since) // 2] if since else "-"
            print(
                f"| worker:1 +{extra} s/epoch ({100 * extra / epoch:.0f}%) from epoch 15 | {cv} | 4 | "
                f"{named}/{JOBS} named, since epoch {at} (median) |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
