"""input_bound on epoch records, its hints by input kind, slowdown attributed to input wait,
and the pure parts of the input timing (integrations/input_wait.py)."""

from __future__ import annotations

import random
import time
from typing import Any

from bench import synthetic as syn
from epochwatch.analysis.detectors.input_bound import hint_for
from epochwatch.analysis.engine import analyze
from epochwatch.analysis.findings import Finding
from epochwatch.analysis.run import Run
from epochwatch.integrations.input_wait import InputProbe, _compute_seconds

PY_DATASET = {"kind": "PyDataset", "workers": 1, "use_multiprocessing": False, "max_queue_size": 10}


def _records(
    shares: list[float], steps: int = 16, settings: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    def make(i: int) -> dict[str, Any]:
        return {
            "seconds": 1.0,
            "steps": steps,
            "batch_size": 32,
            "steps_per_second": steps / 1.0,
            "input_wait_seconds": shares[i],
            "input_wait_source": "tf.data",
            "input_producer_seconds": shares[i] + 0.05,
        }

    records = syn.trace(len(shares), make)
    fit_start = {
        "type": "fit_start",
        "run_id": "synthetic",
        "t": syn.T0 + 0.5,
        "fit": 0,
        "batch_size": 32,
        "input": {"kind": "Batches", "settings": settings or PY_DATASET},
    }
    return [records[0], fit_start, *records[1:]]


def _found(records: list[dict[str, Any]], kind: str = "input_bound") -> list[Finding]:
    run = Run("t")
    for r in records:
        run.add(r)
    return [f for f in analyze(run) if f.kind == kind]


def test_a_steady_high_wait_is_input_bound_with_its_evidence_and_fix() -> None:
    (f,) = _found(_records([0.9, 0.6, 0.62, 0.65, 0.6, 0.61]))
    assert (f.severity, f.target, f.epoch) == ("warning", "input", 3)  # epoch 0 is warm-up
    ev = f.evidence
    assert ev["wait_shares"] == [0.6, 0.62, 0.65] and ev["epochs"] == [1, 3]
    assert abs(ev["wait_ms_per_batch"] - 1000 * 0.62 / 16) < 1e-9
    assert abs(ev["compute_ms_per_step"] - 1000 * 0.38 / 16) < 1e-9
    assert ev["input"] == PY_DATASET and ev["source"] == "tf.data" and ev["batch_size"] == 32
    assert "workers" in f.hint and "use_multiprocessing=True" in f.hint
    assert "62.0%" in f.title and "PyDataset" in f.title


def test_critical_when_the_step_waits_four_times_as_long_as_it_computes() -> None:
    (f,) = _found(_records([0.9, 0.85, 0.9, 0.88]))
    assert f.severity == "critical"


def test_a_healthy_pipeline_and_single_spikes_are_quiet() -> None:
    rng = random.Random(1)
    assert _found(_records([0.9] + [rng.uniform(0.0, 0.3) for _ in range(40)])) == []
    spikes = [0.9] + [0.9 if i % 3 == 0 else 0.1 for i in range(40)]
    assert _found(_records(spikes)) == []
    # high in every epoch but never the majority of the time: not "the input is the limit"
    assert _found(_records([0.9] + [0.4] * 10)) == []


def test_epochs_of_few_steps_are_left_out() -> None:
    assert _found(_records([0.9, 0.7, 0.7, 0.7, 0.7], steps=3)) == []


def test_without_a_measured_wait_nothing_is_said() -> None:
    records = syn.trace(10, lambda i: {"seconds": 1.0, "steps": 16})
    assert _found(records) == []


def test_hints_follow_the_input_kind_and_what_its_settings_lack() -> None:
    tf_slow = {"kind": "tf.data", "stages": ["from_tensor_slices", "map", "batch"], "map_parallel_calls": [1]}
    hint = hint_for({**tf_slow, "prefetch": False, "cache": False}, 32)
    assert "num_parallel_calls=tf.data.AUTOTUNE" in hint and ".prefetch(tf.data.AUTOTUNE)" in hint
    assert ".cache()" in hint
    tuned = hint_for({**tf_slow, "map_parallel_calls": [-1], "prefetch": True, "cache": True}, 32)
    assert "num_parallel_calls" not in tuned and ".prefetch(" not in tuned
    assert "use_multiprocessing=True" in hint_for({"kind": "PyDataset", "workers": 4}, 32)
    assert "vectorise" in hint_for({"kind": "generator"}, 32)
    assert "larger batch" in hint_for({"kind": "generator"}, 8)
    assert "larger batch" not in hint_for({"kind": "generator"}, 64)
    assert "prefetch" in hint_for({}, float("nan"))


def test_a_slowdown_whose_input_wait_grows_names_the_input() -> None:
    rng = random.Random(3)

    def make(i: int) -> dict[str, Any]:
        wait = 0.1 + 0.02 * i  # the wait is what grows; the compute stays at 1 s
        return {"seconds": (1.0 + wait) * rng.uniform(0.98, 1.02), "steps": 16, "input_wait_seconds": wait}

    (f,) = _found(syn.trace(60, make), "slowdown")
    causes = f.evidence["likely_causes"]
    assert causes[0]["column"] == "input_wait", causes
    assert "input" in f.title and "input_bound" in f.hint


def test_compute_time_from_the_consumers_gaps() -> None:
    gaps = [9.0, 0.01, 0.02, 0.01, 0.02]  # newest last; the first spans the epoch boundary
    assert abs(_compute_seconds(gaps, 5) - (0.06 + 0.02)) < 1e-12  # 4 inner gaps + one typical
    assert _compute_seconds([], 5) is None
    assert abs(_compute_seconds([0.01] * 100, 300) - 3.0) < 1e-9  # more steps than TF keeps gaps for


def test_producer_timing_and_queue_wait() -> None:
    def slow() -> Any:
        for i in range(5):
            time.sleep(0.002)
            yield i

    probe = InputProbe()
    probe.begin_epoch(time.perf_counter())
    assert list(probe.timed(slow())) == [0, 1, 2, 3, 4]
    assert probe.producer_calls == 5 and probe.producer_seconds >= 0.009
    probe.queue = True  # PyDataset with workers: the consumer's get() is the wait
    fields = probe.epoch_fields(time.perf_counter(), 5, None)
    assert fields["input_wait_source"] == "queue"
    assert fields["input_wait_seconds"] == fields["input_producer_seconds"] >= 0.009
    assert fields["input_producer_batches"] == 5


def test_each_batch_is_counted_in_exactly_one_epoch() -> None:
    """tf.data prefetches before the first epoch begins and runs ahead between epochs: what
    it made then is the next epoch's (it was lost, 79 of 80 batches under load)."""
    probe = InputProbe()
    probe.producer_seconds, probe.producer_calls = 0.01, 1  # prefetched before the epoch
    probe.begin_epoch(100.0)
    probe.producer_seconds, probe.producer_calls = 0.04, 4
    first = probe.epoch_fields(101.0, 4, None)
    probe.producer_seconds, probe.producer_calls = 0.05, 5  # ahead, between the epochs
    probe.begin_epoch(102.0)
    probe.producer_seconds, probe.producer_calls = 0.08, 8
    second = probe.epoch_fields(103.0, 4, None)
    assert (first["input_producer_batches"], second["input_producer_batches"]) == (4, 4)
    assert first["input_producer_seconds"] == 0.04 and second["input_producer_seconds"] == 0.04


def test_the_span_starts_at_the_first_step_not_at_the_epoch_start() -> None:
    """Keras drops the last epoch's iterator before the first step (a teardown of up to a
    few hundred ms after a long epoch end): no batch is waited for then, so the span that
    bounds the wait starts at the first step."""
    probe = InputProbe()
    probe.begin_epoch(100.0)
    probe.producer_seconds, probe.producer_calls, probe.queue = 0.5, 4, True
    fields = probe.epoch_fields(101.0, 4, 100.9, first_step=100.8)
    assert fields["input_wait_seconds"] == 0.2 and fields["input_span_seconds"] == 0.2
    probe.begin_epoch(200.0)
    probe.producer_seconds, probe.producer_calls = 1.0, 8
    assert probe.epoch_fields(201.0, 4, 200.9)["input_wait_seconds"] == 0.5  # no step known: the epoch


def test_the_wait_is_a_share_of_the_span_it_was_measured_on() -> None:
    """An epoch of 1 s whose steps ran 0.5 s of it (the rest: the last iterator's teardown
    before the first step, callbacks) and waited 0.3 s of those waits 60%, not 30%."""
    records = _records([0.3] * 6)
    for r in records:
        if r["type"] == "epoch":
            r["input_span_seconds"] = 0.5
    (f,) = _found(records)
    assert f.evidence["wait_shares"] == [0.6, 0.6, 0.6]
    assert abs(f.evidence["compute_ms_per_step"] - 1000 * 0.2 / 16) < 1e-9
    assert _found(_records([0.3] * 6)) == []  # without the span: 30% of the epoch, quiet


def test_a_short_fit_that_compiling_dominates_is_info_with_its_consequence() -> None:
    """A loop's tiny fit: the step waits for each epoch's new iterator as long as it computes
    (50%+), but over its 5 planned epochs that is a few percent of a fit its first epoch
    dominates: info, with how much of the fit it costs; the same shares over a long plan warn."""

    def run(first: float, seconds: float, wait: float, planned: int) -> list[Finding]:
        records = _records([0.9] + [wait] * (planned - 1))
        for r in records:
            if r.get("type") == "epoch":
                r["seconds"] = first if r["epoch"] == 0 else seconds
            if r.get("type") == "fit_start":
                r["epochs"] = planned
        return _found(records)

    (tiny,) = run(first=2.0, seconds=0.1, wait=0.055, planned=5)
    assert tiny.severity == "info", tiny
    ev = tiny.evidence
    assert ev["horizon"] == "plan" and ev["horizon_epochs"] == 5
    assert abs(ev["lost_seconds"] - 4 * 0.055) < 1e-9 and abs(ev["fit_seconds"] - 2.4) < 1e-9
    assert "of the fit's 2.40s (9.2%) by its planned end" in tiny.title, tiny.title
    (long,) = run(first=2.0, seconds=0.1, wait=0.055, planned=100)
    assert long.severity == "warning" and long.evidence["lost_share"] > 0.4, long


def test_a_model_read_preempted_on_a_loaded_host_does_not_use_up_the_budget(monkeypatch: Any) -> None:
    """Each read of tf.data's model costs its CPU, not the wall time a loaded host adds: a
    PyDataset fit of 0.38 s epochs whose reads were preempted for 5 ms had 2 of its 8
    epochs measured, and no input_bound finding (the clean-clone suite, Dec 7)."""
    from epochwatch.integrations import input_wait

    def preempted(_iterator: Any) -> list[float]:
        time.sleep(0.005)  # another process holds the core
        return [0.004] * 16

    monkeypatch.setattr(input_wait, "_gap_seconds", preempted)

    class Iterator:
        pass

    probe, measured = InputProbe(), 0
    for epoch in range(8):
        start = epoch * 0.38
        probe.begin_epoch(start)
        iterator = Iterator()
        probe.iterator_created(iterator)
        fields = probe.epoch_fields(start + 0.38, 16, last_step=None)
        measured += "input_wait_seconds" in fields
    assert measured == 8


def test_a_generator_inside_tf_data_is_named_in_the_fix() -> None:
    """tensorflow#56258: `from_generator` with prefetch, 80% waiting: the fix spoke of maps the
    pipeline has none of, and of prefetch it had, and never of the generator."""
    from epochwatch.analysis.detectors.input_bound import hint_for

    settings = {"kind": "tf.data", "stages": ["from_generator", "batch", "prefetch"], "prefetch": True}
    hint = hint_for(settings, 64.0)
    assert hint.startswith("the pipeline's source is a Python generator (Dataset.from_generator)")
    assert "py_function in maps" not in hint and "end the pipeline with .prefetch" not in hint
    mapped = {"kind": "tf.data", "stages": ["from_tensor_slices", "map"], "map_parallel_calls": [1]}
    assert "Python generator" not in hint_for(mapped, 64.0)
