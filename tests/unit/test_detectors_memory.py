"""host_memory_growth and gpu_memory_growth: floors that rise, projected to their limits."""

from __future__ import annotations

import random
from typing import Any

from bench import synthetic as syn
from epochwatch.analysis.findings import Finding
from tests.support import analyze_records as _analyze

GIB, MIB = syn.GIB, syn.MIB


def _kind(found: list[Finding], kind: str) -> list[Finding]:
    return [f for f in found if f.kind == kind]


def test_leak_is_found_and_projected_to_the_cgroup_limit() -> None:
    rng = random.Random(1)

    def make(i: int) -> dict[str, Any]:
        return {"host": syn.host_block(2 * GIB + 200 * MIB * i + rng.randint(0, 4) * MIB, limit=8 * GIB)}

    f = _kind(_analyze(syn.trace(40, make)), "host_memory_growth")[0]
    ev = f.evidence
    assert ev["limit_name"] == "cgroup memory limit"
    assert ev["limit"] == 8 * GIB
    assert 190 * MIB < ev["slope_per_epoch"] < 210 * MIB
    expected = (8 * GIB - ev["level"]) / ev["slope_per_epoch"]
    assert abs(ev["epochs_to_limit"] - expected) < 1.0
    assert "seconds_to_limit" in ev
    assert "cgroup memory limit" in f.title
    assert f.severity == "critical"  # no plan known and the limit is < 50 epochs away
    assert "list" in f.hint


def test_leak_slow_enough_for_the_plan_is_a_warning_and_one_that_is_not_is_critical() -> None:
    def make(i: int) -> dict[str, Any]:
        return {"host": syn.host_block(2 * GIB + 100 * MIB * i, total=64 * GIB)}

    # About 600 epochs to 64 GiB: a 100-epoch plan finishes first, a 1000-epoch plan does not.
    assert _kind(_analyze(syn.trace(40, make, planned=100)), "host_memory_growth")[0].severity == "warning"
    assert _kind(_analyze(syn.trace(40, make, planned=1000)), "host_memory_growth")[0].severity == "critical"


def test_sawtooth_with_a_flat_floor_is_not_a_leak() -> None:
    def make(i: int) -> dict[str, Any]:
        return {"host": syn.host_block(2 * GIB + 300 * MIB * (i % 4))}

    assert _kind(_analyze(syn.trace(80, make)), "host_memory_growth") == []


def test_warm_up_plateau_is_not_a_leak() -> None:
    def make(i: int) -> dict[str, Any]:
        return {"host": syn.host_block(2 * GIB + min(i, 6) * 200 * MIB)}

    assert _kind(_analyze(syn.trace(60, make)), "host_memory_growth") == []


def test_daemon_samples_give_the_epochs_minimum() -> None:
    """Epoch-end RSS rises (a buffer held at the end of each epoch grows) but the lowest
    sample in each epoch does not: the floor is flat, so no leak."""
    records = syn.trace(40, lambda i: {"host": syn.host_block(2 * GIB + 40 * MIB * i)})
    out: list[dict[str, Any]] = []
    for rec in records:
        if rec["type"] == "epoch":
            out.append(
                {"type": "sample", "run_id": "synthetic", "t": rec["start"] + 0.5, "rss_bytes": 2 * GIB}
            )
        out.append(rec)
    assert _kind(_analyze(out), "host_memory_growth") == []
    assert _kind(_analyze(records), "host_memory_growth") != []


def _gpu(i: int, proc: float, *, tf: float | None = None, total: float = 16 * GIB) -> dict[str, Any]:
    dev = {
        "index": 0,
        "name": "Fake GPU",
        "memory_total_bytes": int(total),
        "memory_used_bytes": int(proc),
        "process_memory_bytes": int(proc),
        "throttle_reasons": [],
    }
    rec: dict[str, Any] = {"gpu": {"devices": [dev]}}
    if tf is not None:
        rec["tf_memory"] = {"GPU:0": {"current_bytes": int(tf), "peak_bytes": int(tf * 1.1)}}
    return rec


def test_gpu_growth_from_the_tf_allocator_while_nvml_is_flat() -> None:
    found = _kind(
        _analyze(syn.trace(40, lambda i: _gpu(i, 3 * GIB, tf=1 * GIB + 100 * MIB * i, total=4 * GIB))),
        "gpu_memory_growth",
    )
    assert [f.target for f in found] == ["GPU:0"]
    ev = found[0].evidence
    assert ev["source"].startswith("TF allocator")
    assert ev["limit"] == 4 * GIB
    assert found[0].severity == "critical"


def test_gpu_staircase_from_nvml_is_growth() -> None:
    found = _kind(
        _analyze(syn.trace(50, lambda i: _gpu(i, 2 * GIB + 512 * MIB * (i // 5)))), "gpu_memory_growth"
    )
    assert [f.target for f in found] == ["GPU:0"]
    assert found[0].evidence["source"] == "NVML process memory"


def test_flat_gpu_memory_is_quiet() -> None:
    assert _kind(_analyze(syn.trace(50, lambda i: _gpu(i, 4 * GIB, tf=3 * GIB))), "gpu_memory_growth") == []


def _predict_window(i: int) -> dict[str, Any]:
    """A window of 50 `predict` calls keeping 0.5 MiB each (tensorflow#33030's serving loop):
    every call traces its dataset's three tf.data functions anew (150 traces a window)."""
    names = ("Dataset_map_grab_batch", "Dataset_map_permutation", "Dataset_flat_map_slice_batch_indices")
    functions = {name: {"new": 50} for name in names}
    if i == 0:
        functions["one_step_on_data_distributed"] = {"new": 1}  # predict's step, traced once
    return {
        "source": "auto",
        "epoch_source": "inference_calls",
        "inference": {"calls": 50, "apis": {"predict": 50}, "seconds_per_call": 0.037},
        "host": syn.host_block(700 * MIB + 27 * MIB * i, total=24 * GIB),
        "retraces": {"new": sum(f["new"] for f in functions.values()), "functions": functions},
    }


def test_an_inference_runs_own_tf_data_traces_are_no_warm_up() -> None:
    """Only the first window is warm-up: tf.data's traces at every call are no settling, so
    the 7 windows after it show the leak (8 windows of 50 calls, +27 MiB each)."""
    from epochwatch.analysis.series import FIRST, SETTLING, EpochSeries

    series = EpochSeries()
    for rec in syn.trace(8, _predict_window)[1:-1]:
        series.add_epoch(rec)
    assert list(series.warm) == [FIRST] + [0] * 7
    f = _kind(_analyze(syn.trace(8, _predict_window)), "host_memory_growth")[0]
    assert 26 * MIB < f.evidence["slope_per_epoch"] < 28 * MIB
    # A judged function still tracing in the windows after the first is settling, as before.
    series = EpochSeries()
    for i, rec in enumerate(syn.trace(3, _predict_window)[1:-1]):
        if i:
            rec["retraces"]["functions"]["predict_step"] = {"new": 1}
        series.add_epoch(rec)
    assert list(series.warm) == [FIRST, SETTLING, SETTLING]


def test_a_leak_in_the_calls_after_a_fit_is_not_judged_by_the_fits_plan() -> None:
    """Train 5 epochs, then serve (tensorflow#33030): the windows after the fit are a
    series of their own, numbered from 0, and the fit's 5 planned epochs are no plan of
    theirs (judged by it, the leak was '+0 B more by the planned end': info)."""
    records = syn.trace(
        13, lambda i: {"host": syn.host_block(700 * MIB)} if i < 5 else _predict_window(i - 5), planned=5
    )
    for rec in records[6:-1]:
        rec["epoch"] -= 5
        for key in ("fit", "steps", "step_seconds"):
            rec.pop(key)
    f = _kind(_analyze(records), "host_memory_growth")[0]
    assert f.severity == "warning" and "if it runs as long again" in f.title
    assert f.evidence["epochs"][0] >= 1  # the fit's flat epochs are not in its window


def _with_pipeline(records: list[dict[str, Any]], stages: list[str]) -> list[dict[str, Any]]:
    fit = {"type": "fit_start", "run_id": records[0]["run_id"], "t": syn.T0 + 0.5, "fit": 0}
    fit["input"] = {"kind": "tf.data.Dataset", "settings": {"kind": "tf.data", "stages": stages}}
    return [records[0], fit, *records[1:]]


def test_growth_beside_a_shuffle_of_mapped_elements_names_the_buffer() -> None:
    """tensorflow#32376: `shuffle(buffer_size=N)` after the decoding map; RSS grew 1.4 -> 2.9
    GiB over 12 epochs, plain too. The fix names the shuffle before the generic causes."""
    records = syn.trace(20, lambda i: {"host": syn.host_block(1400 * MIB + 120 * MIB * i)})
    after_map = ["from_tensor_slices", "map", "shuffle", "batch", "prefetch"]
    (f,) = _analyze(_with_pipeline(records, after_map), "host_memory_growth")
    assert f.hint.startswith(
        "the input pipeline shuffles after its map (from_tensor_slices -> map -> shuffle"
    )
    before_map = ["from_tensor_slices", "shuffle", "map", "batch", "prefetch"]
    (g,) = _analyze(_with_pipeline(records, before_map), "host_memory_growth")
    assert "shuffle buffer" not in g.hint


def test_a_fit_that_early_stopping_ended_is_no_horizon_for_its_verdict() -> None:
    """keras#20323: `fit(epochs=1000)` with EarlyStopping, a callback keeping the weights:
    +4.4 MiB an epoch, stopped at 22. While it trained, the plan was the horizon (a warning:
    +4.2 GiB by the planned end); once its fit_end says 22 of 1000, the verdict is "as long
    again" (info), live and in report alike."""
    records = syn.trace(22, lambda i: {"host": syn.host_block(764 * MIB + 4.4 * MIB * i)})
    run_id = records[0]["run_id"]
    fit = {"type": "fit_start", "run_id": run_id, "t": syn.T0 + 0.5, "fit": 0, "epochs": 1000}
    end = {"type": "fit_end", "run_id": run_id, "t": records[-1]["t"], "fit": 0, "epochs_completed": 22}
    planned = [records[0], fit, *records[1:-1]]  # the run cut before its fit ended
    (f,) = _analyze([*planned, records[-1]], "host_memory_growth")
    assert f.severity == "warning" and "by the planned end" in f.title, f.title
    (g,) = _analyze([*planned, end, records[-1]], "host_memory_growth", episodes=True)
    assert g.severity == "info" and "if it runs as long again" in g.title, g.title


def test_jax_arrays_kept_on_its_cpu_device_are_one_finding_judged_against_the_host() -> None:
    """keras#20245 on the JAX backend, a callback keeping jax arrays: +4.1 MiB an epoch in
    JAX's CPU device (live arrays, 28 -> 135 MiB) and in RSS alike. It was a warning on
    `CPU:0` (+50% of its 28 MiB) and an info host_memory_growth for the same bytes: now one
    finding, on the device, judged against the process and the host's memory."""

    def make(i: int) -> dict[str, Any]:
        device = {"CPU:0": {"current_bytes": 28 * MIB + 4.1 * MIB * i, "source": "jax live_arrays"}}
        return {"host": syn.host_block(700 * MIB + 4.4 * MIB * i), "jax_memory": device}

    found = _analyze(syn.trace(30, make))
    assert [(f.kind, f.target) for f in found] == [("gpu_memory_growth", "CPU:0")], [f.title for f in found]
    assert found[0].severity == "info" and "physical memory" in found[0].title, found[0].title


def test_a_leak_that_ran_its_whole_plan_keeps_its_severity_at_the_end() -> None:
    """prediction_history_callback's shape: a warning while the fit ran; at its end nothing of
    the plan is left, which is no reason for the verdict to say less (it said info once)."""

    def rss(i: int) -> float:  # steeper while the warning was said, slower later
        return 700 * MIB + 16 * MIB * min(i, 10) + 6 * MIB * max(0, i - 10)

    records = syn.trace(30, lambda i: {"host": syn.host_block(rss(i))})
    run_id = records[0]["run_id"]
    fit = {"type": "fit_start", "run_id": run_id, "t": syn.T0 + 0.5, "fit": 0, "epochs": 30}
    end = {"type": "fit_end", "run_id": run_id, "t": records[-1]["t"], "fit": 0, "epochs_completed": 30}
    whole = [records[0], fit, *records[1:-1], end, records[-1]]
    (first,) = _analyze(whole, "host_memory_growth")
    (last,) = _analyze(whole, "host_memory_growth", episodes=True)
    assert first.severity == "warning" and last.severity == "warning", (first.title, last.title)
