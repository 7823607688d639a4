"""swap_pressure, gpu_memory_pressure, host_contention, gpu_throttling."""

from __future__ import annotations

import random
from typing import Any

from bench import synthetic as syn
from epochwatch.analysis.run import Run
from epochwatch.analysis.view import RunAtEpoch
from epochwatch.analysis.waiting import competing
from tests.support import analyze_records as _analyze

GIB, MIB = syn.GIB, syn.MIB


def test_process_swapped_out() -> None:
    found = _analyze(
        syn.trace(10, lambda i: {"host": syn.host_block(2 * GIB, swap=(1 * GIB if i >= 5 else 0))}),
        "swap_pressure",
    )
    assert [(f.target, f.severity) for f in found] == [("process", "critical")]
    assert found[0].epoch == 7  # swapped in epochs 5, 6 and 7


def test_a_little_swap_is_quiet() -> None:
    assert (
        _analyze(syn.trace(20, lambda i: {"host": syn.host_block(4 * GIB, swap=10 * MIB)}), "swap_pressure")
        == []
    )


def test_system_swapping_more_with_little_memory_left() -> None:
    def make(i: int) -> dict[str, Any]:
        return {"host": syn.host_block(2 * GIB, available=0.5 * GIB, sys_swap=100 * MIB * i)}

    found = _analyze(syn.trace(30, make), "swap_pressure")
    assert [f.target for f in found] == ["system"]


def _gpu(
    used: float, own: float, total: float = 16 * GIB, reasons: list[str] | None = None
) -> dict[str, Any]:
    return {
        "index": 0,
        "name": "Fake",
        "memory_total_bytes": int(total),
        "memory_used_bytes": int(used),
        "process_memory_bytes": int(own),
        "throttle_reasons": reasons or [],
    }


def test_tf_peak_near_the_total_is_pressure() -> None:
    def make(i: int) -> dict[str, Any]:
        return {
            "gpu": {"devices": [_gpu(15.8 * GIB, 15.8 * GIB)]},
            "tf_memory": {"GPU:0": {"current_bytes": int(14 * GIB), "peak_bytes": int(15.9 * GIB)}},
        }

    found = _analyze(syn.trace(6, make), "gpu_memory_pressure")
    assert [(f.target, f.severity) for f in found] == [("GPU:0", "critical")]


def test_tf_preallocation_alone_is_not_pressure() -> None:
    found = _analyze(
        syn.trace(10, lambda i: {"gpu": {"devices": [_gpu(15.8 * GIB, 15.8 * GIB)]}}), "gpu_memory_pressure"
    )
    assert found == []


def test_other_processes_filling_the_gpu_is_pressure() -> None:
    found = _analyze(
        syn.trace(10, lambda i: {"gpu": {"devices": [_gpu(15 * GIB, 10 * GIB)]}}), "gpu_memory_pressure"
    )
    assert len(found) == 1
    assert found[0].evidence["other_processes_bytes"] == 5 * GIB


def test_contention_from_daemon_samples() -> None:
    records = []
    for rec in syn.trace(10, lambda i: {}):
        if rec["type"] == "epoch":
            cont = {"host_cpu_pct": 98.0, "cpu": [{"pid": 42, "name": "ffmpeg", "cpu_pct": 350.0}]}
            records.append(
                {
                    "type": "sample",
                    "run_id": "synthetic",
                    "t": rec["start"],
                    "rss_bytes": GIB,
                    "contention": cont,
                }
            )
        records.append(rec)
    found = _analyze(records, "host_contention")
    assert [f.severity for f in found] == ["warning"]
    assert "ffmpeg" in found[0].title


def test_busy_others_on_an_idle_host_are_not_contention() -> None:
    records = []
    for rec in syn.trace(10, lambda i: {}):
        if rec["type"] == "epoch":
            cont = {"host_cpu_pct": 40.0, "cpu": [{"pid": 42, "name": "x", "cpu_pct": 150.0}]}
            records.append({"type": "sample", "run_id": "synthetic", "t": rec["start"], "contention": cont})
        records.append(rec)
    assert _analyze(records, "host_contention") == []


def _less_cpu_per_second(demand: str | None) -> list[dict[str, Any]]:
    """The same CPU work per epoch spread over 3% more wall time every epoch; `demand` adds
    the host's CPU demand rising with it ("pressure" or "runnable") or steady ("steady")."""
    rng = random.Random(1)

    def make(i: int) -> dict[str, Any]:
        wall = syn.noisy(rng, 1 + 0.03 * i, 0.02)
        host = syn.host_block(GIB, cpu=syn.noisy(rng, 0.95, 0.02))
        host["cpus"] = 4
        if demand == "pressure":
            host["cpu_pressure_some_seconds"] = wall * min(0.9, 0.02 * i)
        elif demand == "runnable":
            host["runnable"] = 4 + i // 3
        elif demand in ("steady", "taken"):
            host["runnable"] = 9 + rng.randint(-2, 2)  # a loaded shared machine, not growing
            host["cpu_pressure_some_seconds"] = wall * rng.uniform(0.8, 0.95)
        if demand == "taken":  # its threads waited on a run queue for the added time
            host["cpu_wait_seconds"] = 0.05 + (wall - 1) * syn.noisy(rng, 1.5, 0.1)
        elif demand == "not taken":  # others' demand rose; its threads waited no longer
            host["cpu_pressure_some_seconds"] = wall * min(0.9, 0.02 * i)
            host["cpu_wait_seconds"] = syn.noisy(rng, 0.05, 0.2)
        return {"seconds": wall, "host": host}

    return syn.trace(40, make)


def test_less_cpu_per_second_while_others_want_the_cpu_is_contention() -> None:
    # One problem, one finding (issue 23): the slowdown says the host got busier, with the
    # evidence of competition, at info; no host_contention beside it.
    for demand in ("pressure", "runnable"):
        assert _analyze(_less_cpu_per_second(demand), "host_contention") == [], demand
        (slow,) = _analyze(_less_cpu_per_second(demand), "slowdown")
        assert slow.severity == "info" and "the host got busier" in slow.title, slow.title
        assert "competition" in slow.evidence["host_busier"] and "waiting" not in slow.evidence


def test_threads_that_waited_for_a_cpu_longer_are_a_busier_host_whatever_the_load() -> None:
    # A healthy fit among a test suite's workers, the host loaded all along: 56 -> 266 ms an
    # epoch for the same CPU time was a warning "the process waits". Its threads' run-queue
    # wait grew with the time: the CPU was taken from it.
    (slow,) = _analyze(_less_cpu_per_second("taken"), "slowdown")
    assert slow.severity == "info" and "the seconds its threads waited for a CPU" in slow.title, slow.title
    assert "waiting" not in slow.evidence


def test_others_wanting_the_cpu_did_not_slow_a_run_whose_threads_waited_no_longer() -> None:
    # The PSI stall rises (it would be a busier host), but the run's threads waited no longer
    # for a CPU: the added time is its own waiting, said as such.
    (slow,) = _analyze(_less_cpu_per_second("not taken"), "slowdown")
    assert "host_busier" not in slow.evidence and slow.severity != "info", slow.title
    assert slow.evidence["waiting"]["competition"] == "not taken"
    assert "not for a CPU (its threads waited no longer for one)" in slow.title, slow.title


def test_less_cpu_per_second_with_nobody_competing_is_waiting() -> None:
    for demand in (None, "steady"):
        assert _analyze(_less_cpu_per_second(demand), "host_contention") == [], demand
        slow = _analyze(_less_cpu_per_second(demand), "slowdown")
        assert len(slow) == 1
        waiting = slow[0].evidence["waiting"]
        # A steady load is no cause, but the title must not say that nobody competes.
        assert waiting["competition"] == ("not measured" if demand is None else "steady")
        assert waiting["cpu_per_wall_second"][1] < waiting["cpu_per_wall_second"][0]
        assert "the process waits" in slow[0].title
        assert ("nobody competes" in slow[0].title) == (demand is None), slow[0].title
        assert ("loaded all along" in slow[0].title) == (demand == "steady"), slow[0].title
        assert "sleep, I/O, a lock" in slow[0].hint


def _another_job_starts(demand_at: int, slower_at: int, odd: int | None = None) -> list[dict[str, Any]]:
    """The same CPU work per epoch; from `slower_at` each epoch takes 2.2x the wall time; from
    `demand_at` other tasks stall for the CPU half the time (PSI), as when another job starts;
    epoch `odd` is slow for its own reasons, with little stall."""
    rng = random.Random(2)

    def make(i: int) -> dict[str, Any]:
        wall = syn.noisy(rng, 2.2 if i >= slower_at else 1.0, 0.03)
        stall = rng.uniform(0.4, 0.6) if i >= demand_at else rng.uniform(0, 0.04)
        if i == odd:
            wall, stall = 3.0, 0.02
        host = syn.host_block(GIB, cpu=syn.noisy(rng, 0.95, 0.02))
        host["cpu_pressure_some_seconds"] = wall * stall
        return {"seconds": wall, "host": host}

    return syn.trace(30, make)


def test_a_step_of_demand_that_the_time_follows_is_a_busier_host() -> None:
    # A job starting beside a healthy run is a step, which the trend test takes for noise:
    # the slowdown was said critical ("3.2x slower from epoch 7") on a fit beside two busy loops.
    (slow,) = _analyze(_another_job_starts(12, 12), "slowdown")
    assert slow.severity == "info" and "the host got busier" in slow.title, slow.title
    rivals = slow.evidence["host_busier"]["competition"]
    assert rivals["shape"] == "step" and rivals["onset_epoch"] == 12, rivals
    assert "from epoch 13" in slow.title


def test_an_epoch_slow_for_its_own_reasons_does_not_undo_a_step_of_demand() -> None:
    # Read as the slowdown's window is, later in the run: one loaded epoch with little stall
    # (slow for another reason) is no reason to say nobody competes.
    run = Run("t")
    for rec in _another_job_starts(12, 12, odd=25):
        run.add(rec)
    rivals = competing(RunAtEpoch(run), range(1, 30))
    assert rivals is not None and rivals["shape"] == "step" and rivals["onset_epoch"] == 12, rivals


def test_demand_that_stepped_up_long_before_the_time_did_is_not_the_cause() -> None:
    (slow,) = _analyze(_another_job_starts(4, 22), "slowdown")
    assert slow.severity == "critical" and "host_busier" not in slow.evidence, slow.title


def _others_take_the_cpus(workers: bool) -> list[dict[str, Any]]:
    """A fit on 2 CPUs whose epochs take 2.2x the wall time from epoch 12 while its own CPU
    per epoch stays (0.9 s): the other 1.6 CPUs of the slow epochs are other tasks', or,
    with `workers`, its own worker processes' (`children_cpu_seconds`). No stall readings:
    a stall share can fall as epochs lengthen (seen beside a real TF job)."""
    rng = random.Random(3)

    def make(i: int) -> dict[str, Any]:
        wall = syn.noisy(rng, 2.2 if i >= 12 else 1.0, 0.03)
        own = syn.noisy(rng, 0.9, 0.02)
        extra = syn.noisy(rng, 1.6 * wall if i >= 12 else 0.1, 0.05)
        host = syn.host_block(GIB, cpu=own)
        host.update(cpus=2, cpus_busy_seconds=own + extra)
        if workers:
            host["children_cpu_seconds"] = extra
        return {"seconds": wall, "host": host}

    return syn.trace(30, make)


def test_other_tasks_taking_the_cpus_is_a_busier_host() -> None:
    (slow,) = _analyze(_others_take_the_cpus(workers=False), "slowdown")
    assert slow.severity == "info" and "the host got busier (CPUs taken by other tasks" in slow.title, (
        slow.title
    )
    rivals = slow.evidence["host_busier"]["competition"]
    assert rivals["others_cpus"][0] < 0.2 < 1.4 < rivals["others_cpus"][1], rivals


def test_the_run_s_own_workers_taking_the_cpus_are_its_own_work() -> None:
    # A PyDataset's worker processes doing more each epoch: the run's CPU work, neither a
    # busier host nor a process that waits.
    (slow,) = _analyze(_others_take_the_cpus(workers=True), "slowdown")
    assert slow.severity == "critical" and "host_busier" not in slow.evidence, slow.title
    assert "waiting" not in slow.evidence, slow.evidence["waiting"]


# A compiled step doing 20 more loops each epoch on a loaded two-core host (a suite's other
# workers beside it), as its trace read: wall seconds, the process's CPU seconds, its
# threads' wait for a CPU, and the step time's median, per epoch.
_OWN_WORK_ON_A_LOADED_HOST = [
    (0.796, 0.393, 0.646, 0.020),
    (0.102, 0.060, 0.169, 0.005),
    (0.137, 0.084, 0.208, 0.007),
    (0.253, 0.117, 0.348, 0.013),
    (0.450, 0.183, 0.553, 0.024),
    (0.332, 0.182, 0.444, 0.018),
    (0.797, 0.207, 0.606, 0.042),
    (0.559, 0.241, 0.702, 0.030),
    (0.657, 0.265, 0.797, 0.036),
    (0.665, 0.287, 0.804, 0.037),
    (0.550, 0.323, 0.673, 0.031),
    (0.917, 0.428, 1.019, 0.051),
    (0.678, 0.407, 0.723, 0.038),
    (0.814, 0.418, 0.901, 0.046),
    (0.940, 0.451, 1.000, 0.053),
]


def test_own_work_growing_on_a_loaded_host_is_the_run_s_doing() -> None:
    # Its own CPU per epoch grew 5x, its wall time 6x at 0.6 CPU per wall second before:
    # the raw added CPU is just under half the added time, at the share it had all of it.
    # It read "the host got busier (...) while the process's own CPU per epoch stayed
    # 84ms -> 418ms" at info.
    def make(i: int) -> dict[str, Any]:
        wall, own, waited, step = _OWN_WORK_ON_A_LOADED_HOST[i]
        host = syn.host_block(GIB, cpu=own)
        host.update(cpus=2, cpu_wait_seconds=waited, cpu_pressure_some_seconds=wall, runnable=6)
        return {"seconds": wall, "steps": 16, "step_seconds": {"median": step}, "host": host}

    (slow,) = _analyze(syn.trace(len(_OWN_WORK_ON_A_LOADED_HOST), make), "slowdown")
    assert slow.severity == "critical" and "host_busier" not in slow.evidence, slow.title


def test_throttled_epochs_that_are_slower() -> None:
    def make(i: int) -> dict[str, Any]:
        hot = i % 3 == 0
        return {
            "seconds": 1.3 if hot else 1.0,
            "gpu": {"devices": [_gpu(GIB, GIB, reasons=["hw_thermal_slowdown"] if hot else [])]},
        }

    found = _analyze(syn.trace(30, make), "gpu_throttling")
    assert [(f.target, f.severity) for f in found] == [("GPU:0", "warning")]
    assert abs(found[0].evidence["epoch_time_ratio_throttled"] - 1.3) < 1e-6
    assert found[0].evidence["reasons"] == {"hw_thermal_slowdown": 10}


def test_power_cap_that_costs_nothing_is_info_and_rare_throttling_is_quiet() -> None:
    capped = _analyze(
        syn.trace(20, lambda i: {"gpu": {"devices": [_gpu(GIB, GIB, reasons=["sw_power_cap"])]}}),
        "gpu_throttling",
    )
    assert [f.severity for f in capped] == ["info"]
    rare = _analyze(
        syn.trace(
            40, lambda i: {"gpu": {"devices": [_gpu(GIB, GIB, reasons=["sw_power_cap"] if i == 7 else [])]}}
        ),
        "gpu_throttling",
    )
    assert rare == []
