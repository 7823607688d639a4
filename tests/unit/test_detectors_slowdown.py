"""slowdown: quiet on noise, early on ramps, and it names what moved with it."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from bench import synthetic as syn
from epochwatch.analysis.engine import analyze
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.run import Run


def _run(records: list[dict[str, Any]]) -> Run:
    run = Run("t")
    for r in records:
        run.add(r)
    return run


def _findings(n: int, make: Callable[[int], Mapping[str, Any]], **kw: Any) -> list[Finding]:
    return analyze(_run(syn.trace(n, make, **kw)))


def _of(findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.kind == kind]


def test_noisy_healthy_run_has_no_slowdown() -> None:
    for seed in range(5):
        rng = random.Random(seed)

        def make(i: int, rng: random.Random = rng) -> dict[str, Any]:
            return {"seconds": 30.0 if i == 0 else syn.noisy(rng, 1.0, 0.15)}

        found = _findings(80, make)
        assert _of(found, "slowdown") == []


def test_ramp_is_found_with_evidence() -> None:
    rng = random.Random(1)
    found = _of(
        _findings(60, lambda i: {"seconds": 5.0 if i == 0 else syn.noisy(rng, 1 + 0.02 * i, 0.03)}),
        "slowdown",
    )
    assert len(found) == 1
    f = found[0]
    assert f.target is None
    assert f.epoch is not None and f.epoch < 30
    ev = f.evidence
    assert 0.01 < ev["relative_slope_per_epoch"] < 0.04
    assert ev["p_value"] < 0.001
    assert ev["start"] < ev["now"]
    assert ev["epochs"][0] == 1  # epoch 0 was warm-up
    assert ev["slope_ci95"][0] <= ev["slope_per_epoch"] <= ev["slope_ci95"][1]
    assert f.hint
    assert "epoch time grows" in f.title


def test_a_torch_or_jax_run_is_told_its_own_profiler() -> None:
    for fw, profiler in (("torch", "torch.profiler"), ("jax", "jax.profiler")):
        rng = random.Random(1)
        records = syn.trace(
            60, lambda i, rng=rng: {"seconds": 5.0 if i == 0 else syn.noisy(rng, 1 + 0.02 * i, 0.03)}
        )
        records[0]["env"]["frameworks"] = [fw]
        (f,) = _of(analyze(_run(records)), "slowdown")
        assert profiler in f.hint and "keras" not in f.hint, f.hint
        step = syn.trace(40, lambda i: {"seconds": 1.0 if i < 20 else 2.0})
        step[0]["env"]["frameworks"] = [fw]
        (f,) = _of(analyze(_run(step)), "slowdown")
        assert profiler in f.hint and "TensorBoard" not in f.hint, f.hint


def test_severity_follows_growth_against_the_run_baseline() -> None:
    rng = random.Random(2)
    found = _of(_findings(40, lambda i: {"seconds": syn.noisy(rng, 1 + 0.15 * i, 0.02)}), "slowdown")
    assert found and found[0].severity == "critical"  # doubled before the trend was sure enough


def test_first_epoch_compile_time_is_not_a_trend() -> None:
    rng = random.Random(3)
    found = _findings(50, lambda i: {"seconds": 40.0 if i == 0 else syn.noisy(rng, 1.0, 0.05)})
    assert _of(found, "slowdown") == []


def _checkpointing(rng: random.Random, scanned: bool) -> Any:
    """Epoch time grows 2% per epoch while a checkpoint directory fills; with `scanned`, the
    added time is in a callback's on_epoch_end (which lists the directory)."""

    def make(i: int) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "seconds": syn.noisy(rng, 1 + 0.02 * i, 0.03),
            "host": syn.host_block(1 * syn.GIB + rng.randint(0, 5) * syn.MIB, cpu=0.9 * (1 + 0.02 * i)),
            "dirs": {
                "/data/ckpt": {"bytes": 1000 * i, "files": 3 * i + rng.randint(0, 1), "role": "checkpoint"}
            },
        }
        if scanned:
            scan = 0.02 * i * rng.uniform(0.9, 1.1)
            rec["callbacks"] = {"seconds": 0.01 + scan, "by_class": {"PruneOld": scan, "CSVLogger": 0.01}}
        return rec

    return make


def test_directory_scanned_by_a_callback_is_the_likely_cause() -> None:
    f = _of(_findings(60, _checkpointing(random.Random(4), scanned=True)), "slowdown")[0]
    causes = f.evidence["likely_causes"]
    names = [c["series"] for c in causes]
    assert names[0] in ("time in callback PruneOld", "the callbacks' own time")
    assert {c["test"] for c in causes} <= {"accounts", "mechanism", "differences", "detrended"}
    ckpt = [c for c in causes if c["column"] in ("dir_files", "dir_bytes")]
    assert ckpt and ckpt[0]["test"] == "mechanism" and "PruneOld" in ckpt[0]["mechanism"]
    assert "host RSS" not in names
    assert "PruneOld" in f.title


def test_a_directory_that_only_grows_alongside_is_not_a_cause() -> None:
    """The issue's false attribution: files in a checkpoint directory "explained" a slowdown
    only because both rise."""
    f = _of(_findings(60, _checkpointing(random.Random(4), scanned=False)), "slowdown")[0]
    assert f.evidence["likely_causes"] == []
    assert "/data/ckpt" not in f.title


def _files_moving_with_the_time(role: str) -> Any:
    """Epoch time with steps up and down, and a directory whose file count moves with them
    (the same differences): `role` "temp" is /tmp, which every job on the host writes to."""
    rng = random.Random(7)
    walk = [syn.noisy(rng, 1 + 0.02 * i, 0.04) for i in range(60)]

    def make(i: int) -> dict[str, Any]:
        return {
            "seconds": walk[i],
            "dirs": {"/tmp": {"bytes": 1000 * i, "files": int(400 * walk[i]), "role": role}},
        }

    return make


def test_a_shared_temp_directory_moving_with_the_time_is_no_cause_by_correlation_alone() -> None:
    """handsonml18's DQN: "likely cause: files in /tmp (differences, tau 0.31)", other jobs'
    files; the fix then asked to keep at most K checkpoints. A directory of the run's own (a
    checkpoint directory) still counts by the same statistics."""
    own = _of(_findings(60, _files_moving_with_the_time("checkpoint")), "slowdown")
    assert own and any(c["column"] == "dir_files" for c in own[0].evidence["likely_causes"]), own
    shared = _of(_findings(60, _files_moving_with_the_time("temp")), "slowdown")
    assert shared and not any(c["column"] == "dir_files" for c in shared[0].evidence["likely_causes"])
    assert "/tmp" not in shared[0].title


def test_retracing_is_the_likely_cause() -> None:
    rng = random.Random(5)

    def make(i: int) -> dict[str, Any]:
        return {
            "seconds": syn.noisy(rng, 1 + 0.02 * i, 0.03),
            "retraces": {
                "new": 1,
                "graph_build_seconds": 0.01 * i,
                "live_concrete_functions": 5 + i,
                "functions": {},
            },
        }

    f = _of(_findings(60, make), "slowdown")[0]
    assert f.evidence["likely_causes"][0]["column"] in ("live_functions", "graph_build")
    assert "retrac" in f.hint


def test_step_time_growth_hidden_by_epoch_time_is_found() -> None:
    rng = random.Random(6)

    def make(i: int) -> dict[str, Any]:
        step = syn.noisy(rng, 0.01 * (1 + 0.03 * i), 0.03)
        return {
            "seconds": syn.noisy(rng, 1.0, 0.01),
            "step_seconds": {"median": step, "p90": step, "min": step, "max": step},
        }

    found = _of(_findings(60, make), "slowdown")
    assert [f.target for f in found] == ["step time"]


def test_a_level_shift_is_not_a_slowdown() -> None:
    rng = random.Random(7)
    found = _findings(80, lambda i: {"seconds": syn.noisy(rng, 1.3 if i >= 40 else 1.0, 0.03)})
    assert _of(found, "slowdown") == []


def test_the_suspect_holding_the_added_time_leads_over_a_cleaner_trend() -> None:
    """A callback waits longer every epoch, unevenly; the tf.data iterator torn down after that
    idle time adds a smaller, smoothly rising input wait (the case CI met on real Keras).
    Both pass `accounts`; the callback holds most of the added time and is named first."""
    rng = random.Random(6)

    def make(i: int) -> dict[str, Any]:
        blocker = 0.01 * i * rng.uniform(0.5, 1.5)
        wait = 0.02 + 0.005 * i
        return {
            "seconds": 0.05 + wait + blocker + rng.uniform(0, 0.1),
            "input_wait_seconds": wait,
            "input_wait_source": "tf.data",
            "callbacks": {"seconds": blocker, "by_class": {"Blocker": blocker, "History": 0.0}},
        }

    f = _of(_findings(24, make), "slowdown")[0]
    causes = f.evidence["likely_causes"]
    assert [c["test"] for c in causes[:2]] == ["accounts", "accounts"], causes
    assert causes[0]["series"] == "time in callback Blocker", causes
    wait = [c for c in causes if c["column"] == "input_wait"]
    assert wait and wait[0]["tau"] > causes[0]["tau"]  # the cleaner trend, yet second


def test_a_reported_slowdown_reuses_its_causes_without_changing_what_is_reported(
    monkeypatch: Any,
) -> None:
    """Once reported, a slowdown is judged again only when its epoch time grew or at the
    engine's rechecks, and attributed again only when an update can follow: here every
    finding and update comes out as when all of it was redone at every epoch."""
    from epochwatch.analysis import attribution
    from epochwatch.analysis.detectors import slowdown
    from epochwatch.analysis.engine import Engine

    records = syn.trace(90, _checkpointing(random.Random(8), scanned=True))
    calls = {"n": 0}
    real = attribution.likely_causes

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(slowdown, "likely_causes", counted)
    reused = [f.to_dict() for f in analyze(_run(records), episodes=True)]
    cheap = calls["n"]
    monkeypatch.setattr(Engine, "_last_reported", lambda self, kind, target: None)
    monkeypatch.setattr(
        Engine, "_settled", lambda self, detector, view, final=False: lambda kind, target: False
    )
    calls["n"] = 0
    everywhere = [f.to_dict() for f in analyze(_run(records), episodes=True)]
    assert reused == everywhere
    assert next(f for f in reused if f["kind"] == "slowdown")["evidence"]["likely_causes"]
    assert cheap < calls["n"] / 3, (cheap, calls["n"])


def _one_epoch_of_intervals(steps: list[float], host: Any = None) -> list[dict[str, Any]]:
    """One fit of one epoch, each step its own interval (steps of a second, as a k-fold
    loop's LSTM on a loaded CPU records them); `host(seconds)`: an interval's host block."""
    records = syn.trace(1, lambda i: {"seconds": sum(steps), "steps": len(steps)})
    intervals = [
        {
            "type": "interval",
            "run_id": "synthetic",
            "t": syn.T0 + 1 + k,
            "epoch": 0,
            "index": k,
            "fit": 0,
            "source": "keras",
            "step": k + 1,
            "steps": 1,
            "seconds": s,
            "step_seconds": {"median": s, "p90": s},
            **({"host": host(s)} if host is not None else {}),
        }
        for k, s in enumerate(steps)
    ]
    return [records[0], *intervals, *records[1:]]


def test_a_few_slower_steps_of_one_short_epoch_are_no_lasting_step() -> None:
    # Seen on keras#2689's shape: "step time 1.8x slower" from 0.77, 0.77 -> 1.36, 1.42, 1.28 s.
    noisy = _one_epoch_of_intervals([4.8, 0.77, 0.77, 1.36, 1.42, 1.28, 1.3, 1.35])
    assert _of(analyze(_run(noisy)), "slowdown") == []
    lasting = _one_epoch_of_intervals([4.8] + [0.7, 0.72, 0.69, 0.71] + [1.4, 1.42, 1.38, 1.41] * 3)
    (f,) = _of(analyze(_run(lasting)), "slowdown")
    assert f.target == "step time" and f.evidence["shape"] == "step", f


def test_slower_intervals_whose_threads_waited_for_a_cpu_are_a_busier_host() -> None:
    """handsonml18's DQN beside two other jobs on two cores: "step time grows 118.5% per
    epoch (judged on sub-epoch intervals)" over two long epochs, too few to read the CPU from.
    The intervals carry the process's CPU seconds and its threads' wait for a CPU now."""
    steps = [4.8] + [0.7, 0.72, 0.69, 0.71] + [1.4, 1.42, 1.38, 1.41] * 3

    def taken(seconds: float) -> dict[str, Any]:  # the same work; the rest waited for a CPU
        return {"rss_bytes": syn.GIB, "cpu_seconds": 0.65, "cpu_wait_seconds": 1.2 * (seconds - 0.65)}

    (f,) = _of(analyze(_run(_one_epoch_of_intervals(steps, taken))), "slowdown")
    assert f.severity == "info" and "the seconds its threads waited for a CPU" in f.title, f.title

    def waits(seconds: float) -> dict[str, Any]:  # the same work; the rest slept
        return {"rss_bytes": syn.GIB, "cpu_seconds": 0.65, "cpu_wait_seconds": 0.01}

    (f,) = _of(analyze(_run(_one_epoch_of_intervals(steps, waits))), "slowdown")
    assert f.severity != "info" and "host_busier" not in f.evidence, f.title


def _burst(epoch_seconds: float) -> list[dict[str, Any]]:
    """30 epochs; epochs 17-24 take 1.6x as long, then the old pace again (a neighbour's burst
    on a shared host, seen in a healthy fit beside the other test worker)."""
    rng = random.Random(4)

    def make(i: int) -> dict[str, Any]:
        return {"seconds": syn.noisy(rng, epoch_seconds * (1.6 if 17 <= i <= 24 else 1.0), 0.02)}

    return syn.trace(30, make)


def test_a_step_must_hold_a_second_not_only_three_epochs() -> None:
    # 30 ms epochs: the slower level held 0.4 s, a burst, not a change that lasts.
    assert _of(analyze(_run(_burst(0.03))), "slowdown") == []
    # The same shape on 1 s epochs held 8 s: a step, said with its onset.
    (f,) = _of(analyze(_run(_burst(1.0))), "slowdown")
    assert f.evidence["shape"] == "step" and f.evidence["onset_epoch"] == 17, f.evidence


# keras#3230's callback scoring all the predictions seen so far at every epoch end, on a
# loaded two-core host (session 15's regression sweep, run 2): its epochs' wall seconds mixed
# two levels more and more often, while its own CPU seconds per epoch rose cleanly.
_TWO_LEVELS_S = (
    "0.672 0.289 0.269 0.332 0.346 0.261 0.288 0.272 0.235 0.315 0.236 0.323 0.325 0.617 0.584 0.324 "
    "0.619 0.364 0.574 0.637 0.694 0.335 0.633 0.625 0.382 0.645 0.656 0.431 0.570 0.628 0.641 0.682 "
    "0.404 0.621 0.707 0.557 0.664 0.510 0.467 0.659"
)
_OWN_CPU_S = (
    "0.690 0.198 0.207 0.211 0.223 0.223 0.225 0.237 0.236 0.242 0.248 0.247 0.269 0.276 0.290 0.304 "
    "0.303 0.310 0.306 0.323 0.336 0.336 0.342 0.338 0.342 0.360 0.369 0.361 0.369 0.385 0.388 0.394 "
    "0.403 0.407 0.425 0.428 0.440 0.456 0.460 0.462"
)


def _two_levels(own_cpu: list[float]) -> list[dict[str, Any]]:
    walls = [float(v) for v in _TWO_LEVELS_S.split()]
    return syn.trace(
        len(walls), lambda i: {"seconds": walls[i], "host": syn.host_block(700 * syn.MIB, cpu=own_cpu[i])}
    )


def test_a_slowdown_a_loaded_host_hides_in_two_levels_is_judged_through_its_own_cpu() -> None:
    # It was silent: the wall seconds read as a step (a mix of two levels), not a trend.
    cpu = [float(v) for v in _OWN_CPU_S.split()]
    found = [f for f in analyze(_run(_two_levels(cpu))) if f.kind == "slowdown"]
    assert len(found) == 1 and found[0].severity in ("warning", "critical"), found
    assert found[0].evidence["rule"] == "through cpu_seconds" and "host_busier" not in found[0].evidence
    # The same wall seconds with its own CPU flat: the host's levels, not the run's work.
    flat = [0.2 + 0.002 * (i % 3) for i in range(len(cpu))]
    assert [
        f for f in analyze(_run(_two_levels(flat))) if f.kind == "slowdown" and f.severity != "info"
    ] == []
