"""Fits of one run (issue 23): each fit its own series, loops of fits judged per fit, leak
severity by consequence within the horizon, and the same findings online and offline."""

from __future__ import annotations

import random
from typing import Any

from bench import synthetic as syn
from epochwatch.analysis import leaks
from epochwatch.analysis.detectors.slowdown import FIT_TARGET
from epochwatch.analysis.engine import analyze
from epochwatch.analysis.online import OnlineAnalyzer
from epochwatch.analysis.run import FIT_STATS_KEPT, FITS_KEPT, Run

MIB, GIB = syn.MIB, syn.GIB


def _loop(fits: int, epochs: int, make: Any, *, same_model: bool = True) -> list[dict[str, Any]]:
    """run_start, then per fit: fit_start, its epochs (make(fit, epoch) -> fields), fit_end."""
    out: list[dict[str, Any]] = [syn.run_start("loop")]
    t = syn.T0 + 1.0
    for k in range(fits):
        model = {"name": "m", "serial": 0 if same_model else k}
        out.append(
            {"type": "fit_start", "run_id": "loop", "t": t, "fit": k, "epochs": epochs, "model": model}
        )
        last: dict[str, Any] = {}
        for e in range(epochs):
            fields = dict(make(k, e))
            seconds = float(fields.pop("seconds", 1.0))
            last = syn.epoch_record("loop", e, t, seconds, fit=k, **fields)
            out.append(last)
            t += seconds
        rss = last.get("host", {}).get("rss_bytes")
        out.append(
            {"type": "fit_end", "run_id": "loop", "t": t, "fit": k, "seconds": epochs * 1.0, "rss_bytes": rss}
        )
    out.append({"type": "run_end", "run_id": "loop", "t": t + 1, "ended": "completed"})
    return out


def _both(records: list[dict[str, Any]]) -> tuple[dict[Any, str], dict[Any, str]]:
    """(online, offline) findings as {(kind, target): severity}, each as last reported."""
    online = OnlineAnalyzer(records[0], updates=True)
    said: dict[Any, str] = {}
    for rec in records[1:]:
        found = online.add(rec) if rec["type"] != "run_end" else online.finish()
        for f in found:
            said[(f["kind"], f.get("target"))] = f["severity"]
    run = Run("loop")
    for rec in records:
        run.add(rec)
    offline = {f.key: f.severity for f in analyze(run, episodes=True)}
    return said, offline


def test_a_slow_fit_after_a_fast_one_is_no_slowdown() -> None:
    rng = random.Random(1)

    # Fit 0 trains a small model (0.1 s epochs), fit 1 a bigger one (0.4 s): two series.
    def make(k: int, e: int) -> dict[str, Any]:
        return {"seconds": syn.noisy(rng, 0.1 if k == 0 else 0.4, 0.03), "host": syn.host_block(GIB)}

    online, offline = _both(_loop(2, 12, make))
    assert online == offline
    assert ("slowdown", None) not in offline and ("slowdown", "step time") not in offline


def test_a_loop_of_one_epoch_fits_that_leaks_is_judged_per_fit() -> None:
    rng = random.Random(2)

    def make(k: int, e: int) -> dict[str, Any]:
        return {
            "seconds": syn.noisy(rng, 1.0, 0.03),
            "host": syn.host_block(600 * MIB + k * 2 * MIB),
        }

    records = _loop(30, 1, make)
    online, offline = _both(records)
    assert online == offline
    assert offline.get(("host_memory_growth", None)) == "info", offline  # +60 MiB of 600: said, not a warning
    run = Run("loop")
    for rec in records:
        run.add(rec)
    f = next(f for f in analyze(run) if f.kind == "host_memory_growth")
    assert f.evidence["unit"] == "fit" and abs(f.evidence["slope_per_fit"] - 2 * MIB) < 0.2 * MIB
    assert "per fit" in f.title and "as long again" in f.title


def test_new_models_each_fit_are_one_finding() -> None:
    def make(k: int, e: int) -> dict[str, Any]:
        return {"seconds": 1.0, "host": syn.host_block(600 * MIB + k * 8 * MIB)}

    records = _loop(20, 2, make, same_model=False)
    for rec in records:  # ... and each iteration slower ("TensorFlow gets slower each iteration")
        if rec["type"] == "fit_end":
            rec["seconds"], rec["epochs_completed"] = 2.0 * (1.0 + 0.15 * rec["fit"]), 2
    online, offline = _both(records)
    assert online == offline
    assert ("models_in_loop", None) in offline
    assert ("slowdown", "time per epoch of each fit") not in offline, offline  # one problem, one finding
    run = Run("loop")
    for rec in records:
        run.add(rec)
    (f,) = [f for f in analyze(run, episodes=True) if f.kind == "models_in_loop"]
    assert "as slow" in f.title and f.evidence["epoch_seconds_now"] > 1.25 * f.evidence["epoch_seconds_first"]
    assert f.severity == "warning" and f.update > 0, f  # epochs 1.5x as slow later: updated to a warning
    assert ("host_memory_growth", None) not in offline  # the same problem, said once


def test_a_from_generator_dataset_made_each_fit_is_named_as_the_holder() -> None:
    """tensorflow#57690's k-fold: clear_session() each fold, and a new from_generator dataset
    closing over the fold's arrays: RSS +29 MiB a fold, said as what only a subprocess frees.
    tf.data keeps the generators: the fix is to build the fold's data otherwise."""

    def make(k: int, e: int) -> dict[str, Any]:
        return {"seconds": 1.0, "host": syn.host_block(700 * MIB + k * 29 * MIB)}

    def loop(generators: bool) -> Any:
        records = _loop(8, 2, make, same_model=False)
        for rec in records:
            if rec["type"] == "fit_start":
                rec["clear_session_calls"] = rec["fit"] + 1
                rec["from_generator_datasets"] = rec["fit"] + 1 if generators else 1
        run = Run("loop")
        for rec in records:
            run.add(rec)
        (f,) = [f for f in analyze(run, episodes=True) if f.kind == "models_in_loop"]
        return f

    named = loop(True)
    assert "a new from_generator dataset each fit" in named.title, named.title
    assert "from_tensor_slices" in named.hint and "tensorflow#57690" in named.hint
    once = loop(False)  # one dataset for all folds: the generator is no fold's holder
    assert "from_generator" not in once.title and "from_generator" not in once.hint


def test_an_online_run_keeps_a_bounded_number_of_fits() -> None:
    def make(k: int, e: int) -> dict[str, Any]:
        return {"seconds": 0.01, "host": syn.host_block(GIB)}

    records = _loop(3 * FITS_KEPT, 1, make)
    stats = {"features": 64, "mean": [0.5] * 64, "std": [0.29] * 64}  # most of a real fit_start
    for rec in records:
        if rec["type"] == "fit_start":
            rec["input_stats"] = stats
    online = OnlineAnalyzer(records[0])
    for rec in records[1:-1]:
        online.add(rec)
    fits = online.run.fits
    assert len(online.run.fit_ends) <= 2 * FITS_KEPT and len(fits) <= 2 * FITS_KEPT + 1
    assert online.run.fit_series.count == 3 * FITS_KEPT
    # Only the first and the newest fits keep their input statistics, and hook_bytes says so.
    assert [i for i, f in enumerate(fits) if "input_stats" in f] == [
        0,
        *range(len(fits) - FIT_STATS_KEPT, len(fits)),
    ]
    held = online.run.footprint_bytes()
    online.run.max_epoch_records = None  # as if every fit kept them
    assert held < online.run.footprint_bytes() / 2


def test_an_online_run_keeps_a_bounded_number_of_saves_and_restores() -> None:
    """A server that loads its model for every request (tensorflow#40171) writes a restore
    record per request: the hook's and the daemon's analyzers kept every one."""
    online = OnlineAnalyzer(syn.run_start())
    for k in range(3 * FITS_KEPT):
        for kind in ("save", "restore"):
            online.add({"type": kind, "run_id": "synthetic", "t": syn.T0 + k, "path": "/m.keras"})
    run = online.run
    assert FITS_KEPT <= len(run.restores) <= 2 * FITS_KEPT and len(run.restores) == len(run.restore_positions)
    assert FITS_KEPT <= len(run.saves) <= 2 * FITS_KEPT and len(run.saves) == len(run.save_positions)
    assert run.restores[-1]["t"] == syn.T0 + 3 * FITS_KEPT - 1  # the newest kept


def _proj(points: float, basis: str, to_limit: float | None, at_horizon: float) -> dict[str, Any]:
    out: dict[str, Any] = {"horizon": basis, "horizon_points": points, "level_at_horizon": at_horizon}
    if to_limit is not None:
        out["points_to_limit"] = to_limit
    return out


def test_severity_follows_the_consequence_within_the_horizon() -> None:
    base = 1000.0
    assert leaks.severity(_proj(40, "plan", 30, 5000), base) == "critical"  # the limit before the plan ends
    assert leaks.severity(_proj(10, "as long again", 30, 1100), base) == "critical"  # within 50, no plan
    assert (
        leaks.severity(_proj(100, "as long again", 80, 1100), base) == "warning"
    )  # the limit in the horizon
    assert leaks.severity(_proj(100, "plan", 500, 1600), base) == "warning"  # half the process again
    assert leaks.severity(_proj(100, "plan", 500, 1200), base) == "info"  # +20%, far from the limit


def test_a_plan_run_to_its_end_says_no_growth_to_come() -> None:
    # keras#12100's leak, judged at its last planned epoch: "+0 B more by the planned end".
    done = {**_proj(0, "plan", None, 1000), "growth_in_horizon": 0.0}
    assert leaks.consequence(done, "physical memory") == ""
    left = {**_proj(5, "plan", None, 1500), "growth_in_horizon": 500.0 * 2**20}
    assert leaks.consequence(left, "physical memory") == "+500 MiB more by the planned end"


def test_a_loop_of_one_epoch_fits_that_gets_slower_is_a_slowdown_per_fit() -> None:
    rng = random.Random(3)

    def make(k: int, e: int) -> dict[str, Any]:  # "TensorFlow gets slower each iteration"
        return {"seconds": syn.noisy(rng, 1.0 + 0.05 * k, 0.03), "host": syn.host_block(GIB)}

    records = _loop(30, 1, make)
    for rec in records:  # the fit's own seconds, as the hook writes them
        if rec["type"] == "fit_end":
            rec["seconds"] = 1.0 + 0.05 * rec["fit"]
            rec["epochs_completed"] = 1
    online, offline = _both(records)
    assert online == offline
    assert ("slowdown", "time per epoch of each fit") in offline, offline
    run = Run("loop")
    for rec in records:
        run.add(rec)
    f = next(f for f in analyze(run) if f.kind == "slowdown")
    assert f.evidence["unit"] == "fit" and "per fit" in f.title and "over fits" in f.title, f.title


def test_a_steady_loop_of_fits_is_no_slowdown() -> None:
    rng = random.Random(4)

    def make(k: int, e: int) -> dict[str, Any]:
        return {"seconds": syn.noisy(rng, 1.0, 0.05), "host": syn.host_block(GIB)}

    records = _loop(40, 1, make)
    for rec in records:
        if rec["type"] == "fit_end":
            rec["seconds"] = syn.noisy(rng, 1.0, 0.05)
            rec["epochs_completed"] = 1
    online, offline = _both(records)
    assert online == offline and not offline, offline


def test_a_directory_that_grows_each_fit_is_judged_across_the_loop_by_consequence() -> None:
    """A checkpoint per iteration into one directory: each fit's own 2 epochs see no growth,
    the loop does (one point per fit); a disk filling within the horizon is a warning or
    worse, one far from full is info. Online and offline say the same."""

    def loop(free: float) -> list[dict[str, Any]]:
        def make(k: int, e: int) -> dict[str, Any]:
            block = {"bytes": 40 * MIB * k, "files": k, "role": "checkpoint", "free_bytes": free}
            return {"host": syn.host_block(GIB), "dirs": {"/nonexistent/ckpt": block}}

        return _loop(30, 2, make)

    key = ("disk_growth", "/nonexistent/ckpt")
    online, offline = _both(loop(free=400 * MIB))  # full in about 10 fits
    assert online == offline and offline.get(key) in ("warning", "critical"), offline
    online, offline = _both(loop(free=4000 * GIB))
    assert online == offline and offline.get(key) == "info", offline
    run = Run("loop")
    for rec in loop(free=4000 * GIB):
        run.add(rec)
    (f,) = [f for f in analyze(run, episodes=True) if f.key == key]
    assert f.evidence["unit"] == "fit" and abs(f.evidence["slope_per_fit"] - 40 * MIB) < MIB, f.evidence
    assert "per fit" in f.title and "fits" in f.title, f.title


def test_a_loop_leak_that_ends_says_at_which_fit() -> None:
    rng = random.Random(3)

    # A loop of one-epoch fits keeps 2 MiB a fit, then lets it all go at fit 30 (index 29).
    def make(k: int, e: int) -> dict[str, Any]:
        return {
            "seconds": syn.noisy(rng, 1.0, 0.03),
            "host": syn.host_block(600 * MIB + (k * 2 * MIB if k < 29 else 0)),
        }

    records = _loop(40, 1, make)
    online = OnlineAnalyzer(records[0], updates=True)
    said = [
        f for rec in records[1:] for f in (online.add(rec) if rec["type"] != "run_end" else online.finish())
    ]
    ended = [f for f in said if f["kind"] == "host_memory_growth" and "ended_epoch" in f]
    assert len(ended) == 1, said
    f = ended[0]
    assert f["evidence"]["unit"] == "fit" and f["evidence"]["ended_fit"] == 29
    assert f["title"].endswith("recovered at fit 30"), f["title"]  # the fit as counted from 1, not "epoch 1"
    run = Run("loop")
    for rec in records:
        run.add(rec)
    (offline,) = [g for g in analyze(run, episodes=True) if g.kind == "host_memory_growth"]
    assert offline.title == f["title"] and offline.ended_epoch == f["ended_epoch"]


def _busy_loop(own_cpu_grows: bool) -> list[dict[str, Any]]:
    """40 one-epoch fits (keras#13710's shape) whose time per fit grows 60% over the loop, while
    the host's runnable tasks rise from 1 to 6 per 2 CPUs; the fit's own CPU time stays (a
    busier host) or grows with the time (the run does more work)."""
    rng = random.Random(4)

    def make(k: int, e: int) -> dict[str, Any]:
        host = syn.host_block(700 * MIB)
        host.update(runnable=2 + k // 3, cpus=2)
        return {"seconds": 0.1, "host": host}

    records = _loop(40, 1, make)
    for rec in records:
        if rec["type"] == "fit_end":
            k = rec["fit"]
            wall = syn.noisy(rng, 0.1 * (1 + 0.015 * k), 0.01)
            rec["seconds"], rec["epochs_completed"] = wall, 1
            rec["cpu_seconds"] = syn.noisy(rng, 0.09 * (1 + 0.015 * k) if own_cpu_grows else 0.09, 0.005)
    return records


def test_a_loop_that_slows_because_the_host_got_busier_is_info_said_so() -> None:
    records = _busy_loop(own_cpu_grows=False)
    online, offline = _both(records)
    assert online == offline
    assert offline.get(("slowdown", FIT_TARGET)) == "info", offline
    run = Run("loop")
    for rec in records:
        run.add(rec)
    (f,) = [f for f in analyze(run, episodes=True) if f.kind == "slowdown"]
    assert "the host got busier" in f.title and "own CPU per fit stayed" in f.title, f.title
    busy = f.evidence["host_busier"]
    assert busy["competition"]["evidence"] == "runnable tasks per CPU"
    cpu = busy["cpu_seconds_per_fit"]
    assert abs(cpu[1] - cpu[0]) < 0.02
    # The same slowdown with the fit's own CPU time growing along is the run's: a warning.
    online, offline = _both(_busy_loop(own_cpu_grows=True))
    assert online == offline
    assert offline.get(("slowdown", FIT_TARGET)) in ("warning", "critical"), offline


def test_new_models_each_fit_slower_only_on_a_busier_host_stay_info() -> None:
    def make(k: int, e: int) -> dict[str, Any]:
        return {"seconds": 1.0, "host": syn.host_block(600 * MIB + k * 8 * MIB)}

    for own_cpu_grows in (False, True):
        records = _loop(20, 2, make, same_model=False)
        for rec in records:  # each iteration slower; the fit's own CPU time grows along, or not
            if rec["type"] == "fit_end":
                rec["seconds"], rec["epochs_completed"] = 2.0 * (1.0 + 0.15 * rec["fit"]), 2
                rec["cpu_seconds"] = 1.8 * (1.0 + 0.15 * rec["fit"] if own_cpu_grows else 1.0)
        online, offline = _both(records)
        assert online == offline
        run = Run("loop")
        for rec in records:
            run.add(rec)
        (f,) = [f for f in analyze(run, episodes=True) if f.kind == "models_in_loop"]
        assert "as slow" in f.title
        if own_cpu_grows:  # the loop's own work grows: a third of each fit lost is a warning
            assert f.severity == "warning" and "host got busier" not in f.title, f
        else:  # the same wall times with flat CPU: the host got busier, said, and info
            assert f.severity == "info" and "the host got busier" in f.title, f
            assert f.evidence["host_busier"] is True


def test_one_fit_slower_on_a_busier_host_is_info_and_its_own_cpu_growing_warns() -> None:
    # The same rule on one fit's epochs: 40 epochs 1.0 -> 1.6 s while runnable tasks per CPU
    # rise; the process's own CPU per epoch flat (the host) or growing with the time (the run).
    for own in (False, True):
        rng = random.Random(5)

        def make(k: int, e: int, own: bool = own, rng: random.Random = rng) -> dict[str, Any]:
            wall = syn.noisy(rng, 1.0 + 0.015 * e, 0.01)
            host = syn.host_block(700 * MIB, cpu=0.9 * wall if own else syn.noisy(rng, 0.9, 0.01))
            host.update(runnable=2 + e // 4, cpus=2)
            return {"seconds": wall, "host": host}

        online, offline = _both(_loop(1, 40, make))
        assert online == offline
        assert offline.get(("slowdown", None)) == ("warning" if own else "info"), (own, offline)


def test_a_sweep_of_growing_work_is_no_slowdown() -> None:
    # A learning curve / size sweep: each fit trains on more data (more steps per epoch), so
    # its epochs take longer by design; fits of other work are no series of the same work.
    def make(k: int, e: int) -> dict[str, Any]:
        return {"seconds": 0.5 + 0.1 * k, "host": syn.host_block(700 * MIB)}

    for same_model in (True, False):
        records = _loop(20, 3, make, same_model=same_model)
        for rec in records:
            if rec["type"] == "fit_start":
                rec["steps_per_epoch"] = 50 + 10 * rec["fit"]
            if rec["type"] == "fit_end":
                rec["seconds"], rec["epochs_completed"] = 3 * (0.5 + 0.1 * rec["fit"]), 3
        online, offline = _both(records)
        assert online == offline
        assert ("slowdown", FIT_TARGET) not in offline, offline
        run = Run("loop")
        for rec in records:
            run.add(rec)
        loop = [f for f in analyze(run, episodes=True) if f.kind == "models_in_loop"]
        assert all("as slow" not in f.title for f in loop), loop
        # The same loop at one size that slows down is still a slowdown.
        for rec in records:
            if rec["type"] == "fit_start":
                rec["steps_per_epoch"] = 50
        online, offline = _both(records)
        assert online == offline
        assert ("slowdown", FIT_TARGET) in offline or ("models_in_loop", None) in offline, offline


def test_an_epoch_episode_in_a_loop_of_fits_ends_at_its_fit_and_epoch() -> None:
    # Fit 2 of 3 (index 1) grows 30 MiB an epoch from its epoch 3 and gives it all back at its
    # epoch 21 (index 20): "recovered at fit 2, epoch 21", not an epoch number of no fit.
    def make(k: int, e: int) -> dict[str, Any]:
        grow = 30 * MIB * (e - 2) if k == 1 and 2 <= e < 20 else 0
        return {"seconds": 1.0, "host": syn.host_block(600 * MIB + grow)}

    records = _loop(3, 30, make)
    online = OnlineAnalyzer(records[0], updates=True)
    said = [
        f for rec in records[1:] for f in (online.add(rec) if rec["type"] != "run_end" else online.finish())
    ]
    (ended,) = [f for f in said if f["kind"] == "host_memory_growth" and "ended_epoch" in f]
    assert ended["title"].endswith("recovered at fit 2, epoch 21"), ended["title"]
    assert ended["evidence"]["ended_fit"] == 1 and ended["ended_epoch"] == 20
