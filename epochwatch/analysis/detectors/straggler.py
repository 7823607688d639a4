"""straggler and communication_growth: job-level findings over the workers of one job.

In a synchronous job every worker's epoch takes as long as the slowest worker's, so each
trace alone shows the same slowdown. What differs is where the time goes: a worker that
arrives late at the all-reduce waits little in it, the others wait for it. Per epoch
(aligned by position, warm-up epochs left out):

    collective[w]  time inside the steps that hold the all-reduce (integrations/collectives.py)
    wait[w]        collective[w] - min over workers of collective: the extra time worker w
                   spent in the collective beyond the one who waited least

The worker with the least collective time is the one the others waited for. It is a
`straggler` when, from some epoch on to the end (at least MIN_EPOCHS, in HOLD of the
epochs), it is that worker and the others' wait is at least WAIT_SHARE of the epoch, and
MEAN_SHARE on average; "since" is where the others' wait for it steps up (`_onset`).
A balanced job with noise has small waits that change sides from epoch to epoch: no
finding. With no straggler, collective time that grows on every worker at once (even on
the one that waits least) is `communication_growth`, judged with the slowdown detector's
trend rule. The job view is offline; analysis/jobs.py builds the jobs and calls detect_job.
"""

from __future__ import annotations

import math
from collections import Counter
from statistics import median
from typing import Any

from epochwatch.analysis.detectors.slowdown import RULE
from epochwatch.analysis.findings import CRITICAL, WARNING, Finding
from epochwatch.analysis.job import Job
from epochwatch.analysis.trend import assess_growth
from epochwatch.analysis.units import fmt_seconds

KIND = "straggler"
COMM_KIND = "communication_growth"
WAIT_SHARE = 0.1  # the others' wait, as a share of the epoch, that counts in one epoch
MEAN_SHARE = 0.15  # and on average over the straggler's epochs
MIN_EPOCHS = 3  # consecutive-ish epochs of it before it is news
HOLD = 0.8  # share of the epochs from its start to the end where it holds
CRITICAL_SHARE = 0.5  # the others wait half of every epoch or more
CRITICAL_RATIO = 2.0  # or the job's epochs take twice as long as before it began
# "What differs on it": a fact differs when the straggler's mean is this far from the others'.
FACT_FLOORS = {"cpu_share": 0.1, "input_wait_share": 0.05, "swap_bytes": 64 * 2**20, "gpu_throttled": 0.5}

_HINT = (
    "in a synchronous job every worker runs at the pace of the slowest: look at what {worker} does "
    "outside the all-reduce step that the others do not: its input (tf.data prefetch and "
    "num_parallel_calls, a slower disk or a remote file system), callbacks or logging that run only "
    "on it (chief-only checkpoints, evaluation), or its host (other processes on its CPUs, a throttled "
    "or shared GPU); balance the work or move the worker"
)
_COMM_HINT = (
    "time inside the synchronised step grows on every worker while their own work does not: the "
    "collective itself is getting slower (more bytes to all-reduce as the model or its gradients "
    "grow, a congested or degraded interconnect, or a slower link after a reschedule); check the "
    "network between the hosts, the collective implementation (NCCL vs RING) and gradient sizes"
)


def _epoch_number(job: Job, worker: int, p: int) -> int:
    numbers = job.workers[worker].get("epoch_numbers") or []
    value = numbers[p] if p < len(numbers) else None
    return int(value) if isinstance(value, int | float) and value == value else p


def detect_job(job: Job) -> list[Finding]:
    n = len(job.workers)
    if n < 2 or job.epochs == 0:
        return []
    # Per steady epoch position: every worker's epoch seconds and collective seconds.
    seconds = [job.column(w, "seconds") for w in range(n)]
    collective = [job.column(w, "collective") for w in range(n)]
    rows: list[tuple[int, list[float], list[float]]] = []
    for p in range(job.epochs):
        secs = [col[p] for col in seconds]
        coll = [col[p] for col in collective]
        if job.warm(p) or any(v != v for v in secs + coll):
            continue
        rows.append((p, secs, coll))
    if len(rows) < MIN_EPOCHS:
        return []
    found = _straggler(job, rows)
    if found is not None:
        return [found]
    comm = _communication(job, rows)
    return [comm] if comm is not None else []


def _straggler(job: Job, rows: list[tuple[int, list[float], list[float]]]) -> Finding | None:
    hits: list[int | None] = []  # per row: the worker the others waited for, when they did
    waits: list[float] = []
    shares: list[float] = []
    for _p, secs, coll in rows:
        low = min(range(len(coll)), key=coll.__getitem__)
        wait = median([coll[w] - coll[low] for w in range(len(coll)) if w != low])
        share = wait / median(secs) if median(secs) > 0 else 0.0
        waits.append(wait)
        shares.append(share)
        hits.append(low if share >= WAIT_SHARE else None)
    recent = [h for h in hits[len(hits) // 2 :] if h is not None]
    if not recent:
        return None
    suspect = Counter(recent).most_common(1)[0][0]
    # The others' wait for the suspect, per row (0 where nobody waited). The onset is read
    # on it as measured (seconds), not on the rows past WAIT_SHARE alone,
    # and a row where another worker came last says nothing of the suspect (a loaded host
    # held that one up): left out of the split. Read as 0, such rows moved a 2-worker job's
    # onset from epoch 3 to 8 on the loaded test machine.
    series = [share if hit == suspect else 0.0 for share, hit in zip(shares, hits, strict=True)]
    told = [k for k, hit in enumerate(hits) if hit in (suspect, None)]
    at = _onset([_waited_for(rows[k], suspect) for k in told])
    onset = told[at] if at else 0
    tail = hits[onset:]
    if (
        len(tail) < MIN_EPOCHS
        or sum(h == suspect for h in tail) < max(MIN_EPOCHS, HOLD * len(tail))
        or sum(series[onset:]) / len(tail) < MEAN_SHARE
    ):
        return None
    return _straggler_finding(job, rows, onset, suspect, waits[onset:])


def _waited_for(row: tuple[int, list[float], list[float]], suspect: int) -> float:
    """The other workers' wait for `suspect` in one row, in seconds (>= 0): not as a share
    of the epoch, which a longer epoch lowers (the onset epoch's 0.35 s of 0.86 read 0.41
    against 0.55 after it, and the onset one epoch late)."""
    _p, _secs, coll = row
    return max(0.0, median([coll[w] - coll[suspect] for w in range(len(coll)) if w != suspect]))


def _onset(series: list[float]) -> int:
    """Where the wait began: of the splits into a before and an after (at least MIN_EPOCHS
    long) whose before waited less than half as much, the one with the least squared error;
    else 0 (the worker lagged from the start). Splits that fail the ratio are no onset: the
    best fit of all, a later change of the wait's level (0.6 -> 0.83 of the epoch at epoch 15),
    failed it and the onset read as "from the start". Linear in the epochs (prefix sums)."""
    n = len(series)
    sums, squares = [0.0], [0.0]
    for v in series:
        sums.append(sums[-1] + v)
        squares.append(squares[-1] + v * v)

    def sse(a: int, b: int) -> float:  # squared error of series[a:b] around its mean
        total = sums[b] - sums[a]
        return (squares[b] - squares[a]) - total * total / (b - a)

    best, best_k = math.inf, 0
    for k in range(1, n - MIN_EPOCHS + 1):
        before, after = sums[k] / k, (sums[n] - sums[k]) / (n - k)
        err = sse(0, k) + sse(k, n)
        if before < after / 2 and err < best:
            best, best_k = err, k
    return best_k


def _straggler_finding(
    job: Job,
    rows: list[tuple[int, list[float], list[float]]],
    onset: int,
    s: int,
    waits: list[float],
) -> Finding:
    slow = rows[onset:]
    before = rows[:onset]
    epoch_after = median(median(secs) for _p, secs, _c in slow)
    epoch_before = median(median(secs) for _p, secs, _c in before) if before else None
    wait = sum(waits) / len(waits)
    share = wait / epoch_after if epoch_after > 0 else 0.0
    own = [[max(0.0, secs[w] - coll[w]) for _p, secs, coll in slow] for w in range(len(job.workers))]
    own_s = median(own[s])
    own_others = median(median(own[w]) for w in range(len(job.workers)) if w != s)
    worker = job.workers[s]
    name = worker["worker"]
    since = _epoch_number(job, s, slow[0][0])
    evidence: dict[str, Any] = {
        "worker": name,
        "run_id": worker["run_id"],
        "rank": worker.get("rank"),
        "hostname": worker.get("hostname"),
        "since_epoch": since,
        "epochs": len(slow),
        "others_wait_seconds_per_epoch": wait,
        "others_wait_share": share,
        "own_seconds_per_epoch": own_s,
        "others_own_seconds_per_epoch": own_others,
        "job_epoch_seconds": epoch_after,
        "workers": len(job.workers),
    }
    if epoch_before is not None:
        evidence["job_epoch_seconds_before"] = epoch_before
    slowed = [w["run_id"] for w in job.workers if w.get("slowdown")]
    if slowed:
        evidence["explains_slowdown_of"] = slowed
    differs = _differs(job, s, len(slow))
    if differs:
        evidence["differs"] = differs
    ratio = epoch_after / epoch_before if epoch_before else 1.0
    severity = CRITICAL if share >= CRITICAL_SHARE or ratio >= CRITICAL_RATIO else WARNING
    title = (
        f"{name} makes the other {len(job.workers) - 1} worker(s) wait {fmt_seconds(wait)} per epoch "
        f"({100 * share:.0f}% of it) since epoch {since + 1}: its own time {fmt_seconds(own_s)} per epoch "
        f"vs {fmt_seconds(own_others)} on the others"
    )
    if epoch_before:
        title += f"; the job's epochs went {fmt_seconds(epoch_before)} -> {fmt_seconds(epoch_after)}"
    if slowed:
        title += " (the slowdown in the workers' runs is this)"
    return Finding(KIND, severity, title, evidence, _HINT.format(worker=name), name, since)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _differs(job: Job, s: int, last: int) -> list[dict[str, Any]]:
    """Facts where the straggler stands apart from the others, over its slow epochs."""
    out: list[dict[str, Any]] = []
    means: list[dict[str, float]] = []
    for w in job.workers:
        facts = (w.get("facts") or [])[-last:]
        names = {k for row in facts for k in row}
        means.append({k: m for k in names if (m := _mean([row[k] for row in facts if k in row])) is not None})
    for fact, floor in FACT_FLOORS.items():
        mine = means[s].get(fact)
        theirs = [m[fact] for i, m in enumerate(means) if i != s and fact in m]
        if mine is None or not theirs:
            continue
        other = median(theirs)
        if abs(mine - other) >= floor:
            out.append({"fact": fact, "straggler": mine, "others": other})
    host = job.workers[s].get("hostname")
    other_hosts = {w.get("hostname") for i, w in enumerate(job.workers) if i != s}
    if host and host not in other_hosts and len(other_hosts) == 1:
        out.append({"fact": "host", "straggler": host, "others": next(iter(other_hosts))})
    gpus = job.workers[s].get("gpus")
    other_gpus = [w.get("gpus") for i, w in enumerate(job.workers) if i != s]
    if gpus and other_gpus and all(g and g != gpus for g in other_gpus):
        out.append({"fact": "gpu", "straggler": gpus, "others": other_gpus[0]})
    return out


def _communication(job: Job, rows: list[tuple[int, list[float], list[float]]]) -> Finding | None:
    shared = [min(coll) for _p, _s, coll in rows]
    own = [median(max(0.0, s - c) for s, c in zip(secs, coll, strict=True)) for _p, secs, coll in rows]
    growth = assess_growth(shared, RULE)
    if growth is None or assess_growth(own, RULE) is not None:
        return None
    first_p, last_p = rows[max(0, len(rows) - growth.n)][0], rows[-1][0]
    evidence: dict[str, Any] = {
        "collective_seconds_per_epoch": {"from": growth.start, "to": growth.now},
        "rel_slope_per_epoch": growth.rel_slope,
        "p_value": growth.p_value,
        "own_seconds_per_epoch": median(own),
        "epochs": [_epoch_number(job, 0, first_p), _epoch_number(job, 0, last_p)],
        "workers": len(job.workers),
    }
    ratio = growth.now / growth.baseline if growth.baseline > 0 else 1.0
    title = (
        f"time in the all-reduce step grows on all {len(job.workers)} workers, "
        f"{fmt_seconds(growth.start)} -> {fmt_seconds(growth.now)} per epoch "
        f"(+{100 * growth.rel_slope:.1f}% per epoch), with no straggler"
    )
    severity = CRITICAL if ratio >= CRITICAL_RATIO else WARNING
    return Finding(COMM_KIND, severity, title, evidence, _COMM_HINT, None, evidence["epochs"][1])
