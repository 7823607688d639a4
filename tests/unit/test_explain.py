"""Explain where (issue 25), without a framework: whose code a stack is running, the added
time against a baseline, the join to findings, and the windows on real threads and real
tracemalloc driven by epoch records (the controller as the Recorder drives it)."""

from __future__ import annotations

import sys
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from epochwatch.analysis.explained import attach_where
from epochwatch.explain import frames
from epochwatch.explain.added import added_time, describe
from epochwatch.explain.controller import Explainer, Limits
from epochwatch.explain.frames import Place, classify
from epochwatch.explain.slices import SliceLimits
from epochwatch.explain.stacks import Profile, StackWindow
from epochwatch.samplers.own_rss import trim_heap
from tests.support import FreedHeap, rss_mib

SITE = "/usr/lib/python3/site-packages/"
USER = "/home/me/train.py"
FIT = (
    (USER, 30, "<module>"),
    (SITE + "keras/src/utils/traceback_utils.py", 117, "filter_traceback.<locals>.error_handler"),
    (SITE + "keras/src/backend/tensorflow/trainer.py", 399, "TensorFlowTrainer.fit"),
)


def test_a_callback_method_is_named_by_class_and_method_with_its_line() -> None:
    stack = (
        *FIT,
        (SITE + "keras/src/callbacks/callback_list.py", 120, "CallbackList._on_train_batch_end"),
        (USER, 12, "Audit.on_train_batch_end"),
        (USER, 5, "helper"),
    )
    place = classify(stack)
    assert place == Place("callback", "Audit.on_train_batch_end", "/home/me/train.py:5", "helper")
    # The hook's clock around the batch hook (integrations/batch_clocks.py) changes nothing.
    clock = (frames._CLOCKS, 40, "timed.<locals>.clocked")
    assert classify((*stack[:4], clock, *stack[4:])) == place


def test_a_library_callback_is_a_callback_too() -> None:
    stack = (
        *FIT,
        (SITE + "keras/src/callbacks/callback_list.py", 120, "CallbackList._on_epoch_end"),
        (SITE + "keras/src/callbacks/model_checkpoint.py", 200, "ModelCheckpoint.on_epoch_end"),
        (SITE + "h5py/_hl/files.py", 10, "File.__init__"),
    )
    place = classify(stack)
    assert place.category == "callback" and place.label == "ModelCheckpoint.on_epoch_end"
    # The hook's own callback is the hook, even while it waits in TF (reading the optimizer).
    hook = frames._EPOCHWATCH + "integrations/keras_callback.py"
    ours = (*stack[:4], (hook, 203, "FitWatch.on_epoch_end"), (SITE + "tensorflow/x.py", 9, "read"))
    assert classify(ours).category == "epochwatch"


def test_executing_a_tf_function_is_inside_the_compiled_step() -> None:
    stack = (
        *FIT,
        (SITE + "tensorflow/python/eager/polymorphic_function/tracing_compilation.py", 139, "call_function"),
        (SITE + "tensorflow/python/eager/context.py", 1688, "Context.call_function"),
        (SITE + "tensorflow/python/eager/execute.py", 53, "quick_execute"),
    )
    place = classify(stack)
    assert place.category == "inside the compiled step" and place.site == "/home/me/train.py:30"
    # Keras 3 waits for its async step at the loop head: the same place.
    assert classify(FIT).category == "inside the compiled step"


def test_tracing_input_user_code_and_the_hook() -> None:
    tracing = (
        *FIT,
        (SITE + "tensorflow/python/framework/func_graph.py", 900, "func_graph_from_py_func"),
        (USER, 40, "MyLayer.call"),
    )
    assert classify(tracing).category == "tracing (tf.function retrace)"
    loop = ((USER, 50, "<module>"), (SITE + "tensorflow/python/data/ops/iterator_ops.py", 800, "next"))
    assert classify(loop).category == "input pipeline"
    mine = ((USER, 50, "<module>"), (USER, 8, "remember"))
    assert classify(mine) == Place(
        "user code", "remember (/home/me/train.py:8)", "/home/me/train.py:8", "remember"
    )
    own = frames.__file__
    hook = (*FIT[:1], (own, 10, "Recorder.end_epoch"), (threading.__file__, 300, "wait"))
    assert classify(hook).category == "epochwatch"


def _profile(seconds: float, **counts: int) -> Profile:
    places = Counter(
        {Place("callback" if k == "cb" else "framework", k, f"{k}.py:1", k): n for k, n in counts.items()}
    )
    return Profile(sum(counts.values()), seconds, 1, seconds, places)


def test_added_time_names_the_place_that_grew_with_its_share() -> None:
    base = _profile(1.0, cb=10, fw=90)  # 0.1 s callback, 0.9 s framework
    slow = _profile(3.0, cb=70, fw=30)  # 2.1 s callback, 0.9 s framework
    where = added_time(base, slow)
    assert [w["label"] for w in where] == ["cb"]
    assert where[0]["share"] == 1.0 and abs(where[0]["added_seconds_per_epoch"] - 2.0) < 1e-9
    assert "100% callback cb" in describe(where)
    assert added_time(base, base) == []


def test_epochs_slower_everywhere_alike_name_no_place_for_a_sample_or_two() -> None:
    # keras#12100's healthy fit beside another job: 6.2 s epochs took 9.7 s, the step's share
    # of the samples alike, and two places up by a sample each (0.02 s of a 3.5 s rise) were
    # "50% the hook itself, 50% pythonify_logs".
    base = _profile(6.2, step=580, cb=1, hook=1, fw=18)
    slow = _profile(9.7, step=569, cb=2, hook=2, fw=27)
    assert added_time(base, slow)[0]["label"] == "step"  # the step holds the rise, by its share
    # A window whose epochs gained nothing (the rise was in epochs it did not cover) holds none.
    assert added_time(_profile(6.2, step=580, cb=1, hook=1), _profile(6.2, step=576, cb=3, hook=3)) == []
    # ... and a place seen once or twice is no place, even where it alone grew.
    assert added_time(_profile(1.0, fw=100), _profile(1.02, fw=98, cb=2)) == []
    # A real rise held by a place seen often is named as before.
    assert [w["label"] for w in added_time(_profile(1.0, fw=100), _profile(1.5, fw=67, cb=33))] == ["cb"]


def test_a_producer_that_grew_with_the_epoch_is_named_and_the_step_growth_is_its_wait() -> None:
    step = Place(frames.COMPILED, frames.COMPILED, "train.py:9", "<module>")
    producer = Place(frames.INPUT, f"{frames.INPUT}: Grow.__getitem__", "train.py:3", "Grow.__getitem__")

    def profile(seconds: float, step_samples: int, other: int) -> Profile:
        places = Counter({step: step_samples, Place("framework", "fw", "fw.py:1", "fw"): other})
        return Profile(step_samples + other, seconds, 3, seconds, places)

    base, slow = profile(0.1, 80, 20), profile(0.3, 93, 7)  # the step: 0.08 s -> 0.28 s
    # The producer's clock: 0.02 -> 0.17 s an epoch, three quarters of the epoch's 0.2 s growth.
    # The step's growth up to the producer's is the wait for it; the rest stays the step's.
    where = added_time(base, slow, (producer, 0.02, 0.17))
    assert [w["label"] for w in where] == [producer.label, step.label]
    assert "75% input pipeline: Grow.__getitem__ (train.py:3)" in describe(where)
    # A producer that grew by much less than the epoch: the step keeps what it added, first.
    where = added_time(base, slow, (producer, 0.02, 0.06))
    assert [w["label"] for w in where] == [step.label, producer.label]
    assert abs(where[0]["added_seconds_per_epoch"] - 0.199) < 1e-6
    # Without its clock, the producer's few samples stand: nothing is taken as waiting.
    assert [w["label"] for w in added_time(base, slow)] == [step.label]


def test_the_finding_gets_the_newest_explanation_that_named_something() -> None:
    findings: list[dict[str, Any]] = [{"kind": "slowdown"}, {"kind": "retrace_storm"}]
    explains = [
        {"explains": "slowdown", "summary": "first", "where": [{"label": "a"}], "method": "stack_sampling"},
        {"explains": "slowdown", "summary": "second", "where": [{"label": "b"}], "method": "stack_sampling"},
        {"explains": "slowdown", "summary": "nothing", "where": []},
    ]
    attach_where(findings, explains)
    assert findings[0]["where"]["summary"] == "second" and findings[0]["where"]["places"] == [{"label": "b"}]
    assert "where" not in findings[1]


def test_a_finding_whose_callback_accounts_gets_the_window_that_names_that_callback() -> None:
    # keras#3230: the first window named the callback (right); a later one held a spike epoch
    # inside the compiled step and replaced it, so the finding's title said "time in callback
    # RocAuc" and its where "64% inside the compiled step".
    cause = {"series": "time in callback RocAuc", "column": "cb_seconds", "key": "RocAuc", "test": "accounts"}
    explains = [
        {
            "explains": "slowdown",
            "summary": "cb",
            "where": [{"category": "callback", "label": "RocAuc.on_epoch_end"}],
        },
        {"explains": "slowdown", "summary": "step", "where": [{"category": "compiled step", "label": "x"}]},
    ]
    finding: dict[str, Any] = {"kind": "slowdown", "evidence": {"likely_causes": [cause]}}
    attach_where([finding], explains)
    assert finding["where"]["summary"] == "cb"
    # Without such a cause (or one the windows do not name first), the newest that named something.
    other = {"kind": "slowdown", "evidence": {"likely_causes": [{**cause, "key": "Other"}]}}
    attach_where([other], explains)
    assert other["where"]["summary"] == "step"


def _busy(stop: threading.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(1000))  # the planted work


def test_a_stack_window_sees_the_function_a_thread_runs() -> None:
    stop = threading.Event()
    worker = threading.Thread(target=_busy, args=(stop,))
    worker.start()
    try:
        window = StackWindow(worker.ident or 0, rate=200.0, limit_seconds=5.0)
        time.sleep(0.4)
        profile = window.close(1, 0.4)
    finally:
        stop.set()
        worker.join()
    # A thread that holds the GIL lets the sampler in at the switch interval (5 ms) at best.
    assert profile.samples >= 10
    (top, _n), *_ = profile.places.most_common(1)
    assert top.function in ("_busy", "_busy.<locals>.<genexpr>") and top.site.endswith(
        "test_explain.py:" + top.site.split(":")[-1]
    )


_KEPT: list[np.ndarray] = []


def _leak() -> None:
    _KEPT.append(np.ones(1 << 20))  # PLANTED: 8 MiB an epoch


def _epoch(explainer: Explainer, n: int, rss: int, seconds: float = 0.05) -> None:
    explainer.on_record({"type": "epoch", "epoch": n, "seconds": seconds, "host": {"rss_bytes": rss}})


def _step_leak() -> None:
    _KEPT.append(np.ones(1 << 14))  # PLANTED: 128 KiB a step


def _steps(n: int, leak: Any = None) -> None:
    """An epoch of real steps (3 ms each, a few Python allocations freed again), each said
    to the step anchor as a Keras fit says it (it listens only while `STEPS.active`)."""
    from epochwatch.explain.anchor import STEPS

    for step in range(n):
        STEPS.begin(step)
        scratch = [{"step": i} for i in range(50)]
        time.sleep(0.003)
        del scratch
        if leak is not None:
            leak()


def _run(
    explainer: Explainer, epochs: int, rss_each: int, epoch_leak: Any = None, step_leak: Any = None
) -> None:
    rss = 100 << 20
    for n in range(epochs):
        _steps(20, step_leak)
        t0 = time.perf_counter()
        if epoch_leak is not None:
            epoch_leak()  # as a callback's on_epoch_end: just before the epoch record
        callbacks = {"seconds": time.perf_counter() - t0}  # as Keras' epoch record says it
        rss += rss_each
        explainer.on_record(
            {"type": "epoch", "epoch": n, "steps": 20, "callbacks": callbacks, "host": {"rss_bytes": rss}}
        )
    explainer.finish()


def _memory(written: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [f for t, f in written if t == "explain" and f["explains"] == "host_memory_growth"]


def test_rss_growth_opens_tracemalloc_slices_that_name_an_epoch_end_leak() -> None:
    written: list[tuple[str, dict[str, Any]]] = []
    t0 = time.perf_counter()
    # What is named, not what it costs: a looser budget keeps both slices inside the run
    # (a slice's cost measured on a loaded machine, where a fresh process's 8 MiB arrays
    # fault their pages in, spaced the two 20 epochs apart).
    limits = Limits(slices=SliceLimits(budget=1.0))
    _run(Explainer(lambda t, **f: written.append((t, f)), limits=limits), 14, 8 << 20, epoch_leak=_leak)
    run_seconds = time.perf_counter() - t0
    (found,) = _memory(written)
    top = found["where"][0]
    assert top["function"] == "_leak" and "PLANTED" in top["line"], found
    assert 8_000_000 < top["bytes_per_epoch"] < 9_000_000 and found["in_python"] is True
    # Two slices across epoch boundaries, never whole epochs: a slice here (a predicted
    # boundary, no step anchor) traces ~15-30 ms of a 70 ms epoch, and a miss on a loaded
    # machine up to its limit; 3-15% of this run in all.
    assert found["slices"] == 2 and found["traced_seconds"] < 0.3 * run_seconds, (found, run_seconds)
    assert not tracemalloc.is_tracing()
    _KEPT.clear()


_STACKED: list[np.ndarray] = []


def _kept_and_stacked() -> None:
    _KEPT.append(np.ones(1 << 17))  # 1 MiB an epoch
    _STACKED[:] = [np.stack(_KEPT)]  # REBUILT: the whole history again, 1 MiB larger each epoch


def test_an_array_rebuilt_larger_each_epoch_is_said_at_what_it_grows_not_its_size() -> None:
    """keras#4168's callback keeps 4.6 MiB of predictions an epoch and stacks them all anew
    at each epoch's end: the stacking line read "+22.9 MiB an epoch" (the new array's whole
    size, the old one freed untraced), twice the RSS's rise. Both lines grow 1 MiB an epoch."""
    written: list[tuple[str, dict[str, Any]]] = []
    limits = Limits(slices=SliceLimits(budget=1.0))
    _run(
        Explainer(lambda t, **f: written.append((t, f)), limits=limits),
        16,
        2 << 20,
        epoch_leak=_kept_and_stacked,
    )
    (found,) = _memory(written)
    by_line = {w["line"].split("# ")[-1][:7]: w["bytes_per_epoch"] for w in found["where"] if w["user_code"]}
    assert abs(by_line["REBUILT"] / (1 << 20) - 1) < 0.1 and abs(by_line["1 MiB a"] / (1 << 20) - 1) < 0.1, (
        found
    )
    _KEPT.clear()
    _STACKED.clear()
    trim_heap()  # what glibc keeps of it would make a test after it read less RSS


@pytest.mark.parametrize("keras", [False, True])
def test_a_per_step_leak_is_scaled_to_the_epoch(keras: bool) -> None:
    from epochwatch.explain.anchor import STEPS

    written: list[tuple[str, dict[str, Any]]] = []
    explainer = Explainer(lambda t, **f: written.append((t, f)))
    STEPS.active = keras  # a Keras fit: slices counted in steps; else in seconds, untraced
    try:
        _run(explainer, 14, 2560 << 10, step_leak=_step_leak)
    finally:
        STEPS.active = False
    (found,) = _memory(written)
    top = found["where"][0]
    assert top["function"] == "_step_leak", found
    # 20 steps of 128 KiB: 2.5 MiB an epoch, from a rate seen in a few steps of each slice
    # (it read 2-4 times low while the rate was per traced second).
    assert abs(top["bytes_per_epoch"] / (20 << 17) - 1) < 0.25 and found["in_python"] is True, found
    _KEPT.clear()


def test_growth_outside_python_objects_is_said_so() -> None:
    written: list[tuple[str, dict[str, Any]]] = []
    _run(Explainer(lambda t, **f: written.append((t, f))), 10, 16 << 20)  # Python allocates nothing
    (found,) = _memory(written)
    assert found["in_python"] is False and "not in Python objects" in found["summary"]
    # Of which epochs: a finding's own figure may be of others (its slope over the whole run).
    first, last = found["epochs"]
    assert f"RSS grew 16.0 MiB an epoch over epochs {max(1, first - 1)}-{last + 1}" in found["summary"], found


def test_a_sweeps_slower_fit_is_held_to_its_own_epochs_not_the_first_fits() -> None:
    """A grid search's second fit (a smaller batch) takes twice the first's time every
    epoch: no slow window. Its own epochs growing past its quickest are still suspected."""
    written: list[tuple[str, dict[str, Any]]] = []
    explainer = Explainer(lambda t, **f: written.append((t, f)), limits=Limits(min_samples=10**6))
    plans = ((0.5, 0.05, 0.05, 0.05, 0.05), (0.5, 0.1, 0.1, 0.1, 0.1), (0.5, 0.1, 0.1, 0.2, 0.3, 0.4))
    for fit, seconds in enumerate(plans):
        explainer.on_record({"type": "fit_start", "fit": fit, "epochs": len(seconds)})
        for epoch, s in enumerate(seconds):
            time.sleep(0.01)
            _epoch(explainer, epoch, 100, seconds=s)
    explainer.finish()
    found = [f for t, f in written if t == "explain"]
    assert [f["epochs"] for f in found] == [[5]], found  # the third fit's, opened at its epoch 4


def test_sites_that_hold_part_of_the_rise_are_named_with_their_share_of_it() -> None:
    """A Keras fit on a shuffled tf.data pipeline (tensorflow#54299): RSS rose 2.9 MiB an
    epoch while the slices saw 0.36 MiB of Python objects at the fit's line. Named alone,
    that line read as the leak."""
    from epochwatch.explain import memory

    sites = memory.grown_sites({(USER, 15): [380_000, 4945]})
    traced = memory.traced_growth(sites)
    part = memory.memory_summary(sites, traced, 3_047_424, True)
    assert "train.py:15" in part and "12% of RSS's rise" in part and "the rest is native memory" in part
    most = memory.memory_summary(sites, traced, 500_000, True)
    assert "train.py:15" in most and "native" not in most


def test_what_the_input_producer_grew_is_said_as_seen_in_part_not_as_native_memory() -> None:
    """keras#12100: a PyDataset whose __getitem__ keeps each batch (85 MiB an epoch). Its calls
    run on tf.data's threads ahead of the steps, done with an epoch's batches before its last
    steps: the slices saw 2.3 MiB an epoch there, and the summary said "the rest is native"."""
    from epochwatch.explain import memory

    sites = memory.grown_sites({(USER, 16): [800_000, 6], (USER, 40): [100_000, 1900]})
    sites[0]["function"] = "DS.__getitem__"
    traced = memory.traced_growth(sites)
    said = memory.memory_summary(sites, traced, 15 * 2**20, True, producer="DS.__getitem__")
    assert "train.py:16 DS.__getitem__" in said and "native" not in said
    assert "DS.__getitem__ makes the batches on the input pipeline's threads" in said
    # Where its sites grew not at all, "not in Python objects" says the producer may hold it.
    native = memory.memory_summary([], 0, 15 * 2**20, False, producer="DS.__getitem__")
    assert (
        "not in Python objects" in native and "DS.__getitem__ runs on the input pipeline's threads" in native
    )
    # Without a producer, as before.
    assert "the rest is native memory" in memory.memory_summary(sites, traced, 15 * 2**20, True)


def test_a_slowdown_finding_opens_a_stack_window_that_closes_at_an_epoch_end() -> None:
    written: list[tuple[str, dict[str, Any]]] = []
    explainer = Explainer(lambda t, **f: written.append((t, f)), limits=Limits(min_samples=3))
    _epoch(explainer, 0, 100)  # the baseline window opens
    time.sleep(0.1)
    _epoch(explainer, 1, 100)  # and closes
    explainer.on_record({"type": "finding", "kind": "slowdown", "epoch": 1})
    _epoch(explainer, 2, 100)  # the slow window opens
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.3:
        sum(i * i for i in range(1000))  # PLANTED
    _epoch(explainer, 3, 100, seconds=0.2)
    explainer.finish()
    (found,) = [f for t, f in written if t == "explain"]
    assert found["explains"] == "slowdown" and found["where"], found
    assert any(w["category"] == "user code" and "test_a_slowdown" in w["function"] for w in found["where"])
    assert threading.active_count() >= 1  # the windows' threads are gone (conftest checks)


def test_in_a_loop_of_fits_no_window_spans_a_later_fits_warm_up_epoch() -> None:
    """Each fit's first epoch traces a new model's step (10x the others), its last saves a
    checkpoint (2x): a later fit's first epoch is no slowdown, and neither the baseline nor
    the slow window that a finding asks for takes it in."""
    written: list[tuple[str, dict[str, Any]]] = []
    explainer = Explainer(lambda t, **f: written.append((t, f)), limits=Limits(min_samples=10**6))
    for fit in range(4):
        explainer.on_record({"type": "fit_start", "fit": fit, "epochs": 3})
        for epoch, seconds in enumerate((0.5, 0.05, 0.1)):
            time.sleep(0.02)
            _epoch(explainer, epoch, 100, seconds=seconds)
        if fit == 1:  # asked for at the fit's last epoch: the window opens after the next warm-up
            explainer.on_record({"type": "finding", "kind": "slowdown", "epoch": 2})
    explainer.finish()
    found = [f for t, f in written if t == "explain"]
    assert [(f["epochs"], f["baseline_epochs"]) for f in found] == [([1, 2], [1, 2])], found


def test_other_threads_count_when_they_run_a_callback_or_feed_the_input() -> None:
    from epochwatch.explain.frames import classify_other

    boot = (threading.__file__, 1000, "Thread._bootstrap")
    feeding = (
        boot,
        (SITE + "tensorflow/python/data/ops/from_generator_op.py", 100, "generator_py_func"),
        (
            SITE + "keras/src/trainers/data_adapters/py_dataset_adapter.py",
            300,
            "PyDatasetAdapter._get_iterator",
        ),
        (USER, 22, "Slow.__getitem__"),
    )
    place = classify_other(feeding)
    assert place == Place(
        "input pipeline", "input pipeline: Slow.__getitem__", "/home/me/train.py:22", "Slow.__getitem__"
    )
    pooled = (
        boot,
        (SITE + "keras/src/callbacks/callback_list.py", 140, "CallbackList._on_train_batch_end"),
        (USER, 12, "Audit.on_train_batch_end"),
    )
    assert classify_other(pooled) == Place(
        "callback", "Audit.on_train_batch_end", "/home/me/train.py:12", "Audit.on_train_batch_end"
    )
    assert classify_other((boot, (USER, 5, "unrelated_worker"))) is None


def test_the_console_and_hook_findings_carry_where_in_either_order() -> None:
    import io

    from epochwatch.console import Console

    finding = {
        "type": "finding",
        "kind": "host_memory_growth",
        "severity": "warning",
        "title": "grows",
        "epoch": 5,
    }
    explain = {
        "type": "explain",
        "explains": "host_memory_growth",
        "summary": "at train.py:9 keep",
        "where": [{}],
    }
    out = io.StringIO()
    first = Console(stream=out)
    first.observe(finding)
    first.boundary()  # the finding's line, at the epoch boundary
    first.explained(explain)  # after the finding was said: its own line, at the next boundary
    first.boundary()
    assert first.findings[0]["where"]["summary"] == "at train.py:9 keep"
    assert "host_memory_growth explained: at train.py:9 keep" in out.getvalue()
    out = io.StringIO()
    second = Console(stream=out)
    second.explained(explain)
    second.observe(finding)  # before it: the finding's own line says where
    second.boundary()
    assert second.findings[0]["where"]["summary"] == "at train.py:9 keep"
    assert "warning host_memory_growth at epoch 6: grows; at train.py:9 keep\n" in out.getvalue()


def test_the_live_line_and_the_report_name_the_same_user_site() -> None:
    """tf35873's list of kept gradients: native growth, a list `typing` builds on every
    isinstance check grew most in number, and the script's loop line next. The live line
    named `typing.py:1922` (the first place), the report the script's line (the summary)."""
    import io
    import typing

    from epochwatch.console import Console
    from epochwatch.explain import memory

    lib = SITE + "tensorflow/python/eager/execute.py"
    typed = (typing.__file__, 1922)
    # A stdlib frame is never the site while a frame outside it is in the traceback.
    assert memory._site((typed, (lib, 53))) == (lib, 53)
    assert memory._site((typed, (lib, 53), (USER, 33))) == (USER, 33)
    sizes = {typed: [40_000, 900], (lib, 53): [30_000, 285], (USER, 32): [11_000, 164]}
    sites = memory.grown_sites(sizes)
    for in_python, rss in ((False, 40 << 20), (True, 60_000)):
        traced = memory.traced_growth(sites)
        where = memory.named_sites(sites, traced, in_python)
        summary = memory.memory_summary(where, traced, rss, in_python)
        assert where[0]["site"] == "/home/me/train.py:32", where
        record = {"type": "explain", "explains": "host_memory_growth", "summary": summary, "where": where}
        out = io.StringIO()
        console = Console(stream=out)
        console.observe(
            {"type": "finding", "kind": "host_memory_growth", "severity": "warning", "title": "grows"}
        )
        console.boundary()
        console.explained(record)
        console.boundary()
        live = out.getvalue().split("explained: ", 1)[1]
        assert "/home/me/train.py:32" in live and "typing" not in live, live
        head = summary.split("/home/me/train.py:32")
        assert len(head) > 1 and "typing" not in head[0] and "execute.py" not in head[0], summary


def test_a_slice_never_starts_before_the_last_quarter_of_an_epochs_steps() -> None:
    """An epoch whose end work was measured while traced reads longer than the epoch: the
    slice was armed at step -155828790 and traced every step of the next epoch (the demo,
    2.3 s of a 0.3 s epoch). A lead that overran waits for an untraced boundary."""
    from epochwatch.explain.anchor import StepAnchor
    from epochwatch.explain.slices import Slicer

    anchor = StepAnchor()
    anchor.active = True
    slicer = Slicer(anchor=anchor)
    try:
        slicer.on_boundary([0.3, 0.28, 0.68], steps=52, boundary_work=0.49)
        assert 39 <= anchor.at < 52 and 1 <= slicer._tail_steps <= 13
        anchor.disarm()
        slicer._state = "lead"  # as if it had started, then ran past its limit
        slicer._overrun()
        assert slicer.on_boundary([0.3, 0.28, 0.7], steps=52, boundary_work=0.5) is False
        assert anchor.at == sys.maxsize  # nothing armed at the traced epoch's boundary
    finally:
        slicer.stop()


def test_the_ops_that_grew_are_named_from_their_own_time_per_completed_step() -> None:
    """The profiler's events as integrations/tf_profile.py reads them: an op holding
    others counts only its own time, and ops of a step the capture cut off count not."""
    from epochwatch.explain.captures import describe_ops, grown_ops
    from epochwatch.integrations.tf_profile import _own

    # Two threads (lines 0, 1); one complete call (0-100) and one cut off (its span absent).
    ops = [
        (0, 10, 50, "while (While)"),
        (0, 20, 30, "while/body/matmul (MatMul)"),  # inside the while op: 30 of its 50
        (1, 60, 20, "dense/BiasAdd (BiasAdd)"),
        (1, 150, 40, "while/body/matmul (MatMul)"),  # in the step the capture cut off
    ]
    own = _own(ops, [(0, 100)])
    assert own == {"while (While)": 20, "while/body/matmul (MatMul)": 30, "dense/BiasAdd (BiasAdd)": 20}
    base = {"while/body/matmul (MatMul)": 0.010, "while (While)": 0.002, "dense/BiasAdd (BiasAdd)": 0.001}
    slow = {"while/body/matmul (MatMul)": 0.070, "while (While)": 0.022, "dense/BiasAdd (BiasAdd)": 0.001}
    grown = grown_ops(base, slow)
    assert [o["op"] for o in grown] == ["while/body/matmul (MatMul)", "while (While)"]
    assert grown[0]["share"] == 0.75 and abs(grown[0]["added_seconds_per_step"] - 0.06) < 1e-9
    said = describe_ops(grown, True, "/t/run.profile")
    assert "75% while/body/matmul (MatMul)" in said and "grew most" in said, said
    assert grown_ops(None, slow)[0]["op"] == "while/body/matmul (MatMul)"  # no baseline: the largest


class _Profiler:
    """The profiler's interface (integrations/tf_profile.py, torch_profile.py), scripted:
    `read(path, n)` is what the n-th capture started into `path` reads back."""

    def __init__(self, read: Callable[[str, int], Any]) -> None:
        self.started: list[str] = []
        self.reads = 0
        self._read = read

    def start(self, path: str) -> bool:
        self.started.append(path)
        return True

    def stop(self) -> None:
        pass

    def op_seconds(self, path: str) -> Any:
        self.reads += 1
        return self._read(path, self.started.count(path))


class _Epochs:
    """A clock that moves only when told: the epochs' time, for a capture's cool-down."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _paced(captures: Any, clock: _Epochs, epoch: int, seconds: float = 1.0) -> Any:
    """An epoch of `seconds` ends, then its record."""
    clock.now += seconds
    return captures.on_epoch(epoch, seconds, 10)


def test_a_capture_is_paid_for_before_the_next_begins() -> None:
    """A capture slows the steps it records (a third or so): of a short epoch, far more than
    2%. The next capture waits until the last one's cost (0.35 of what it recorded, and its
    stop's and read's CPU) is 1.5% of the time since it began; the record says the cost."""
    from epochwatch.explain.captures import SLOWDOWN, Captures

    reads = _Profiler(lambda path, _n: ({"mm (MatMul)": 0.01 if "baseline" in path else 0.03}, 3))
    clock = _Epochs()
    captures = Captures(lambda: reads, lambda: "/p", limit=60.0, clock=clock)
    captures._arm("baseline")
    assert _paced(captures, clock, 1) is None and captures.busy  # the baseline capture begins
    assert _paced(captures, clock, 2, 0.2) is None  # stopped and read back
    assert abs(captures.cost_seconds - SLOWDOWN * 0.2) < 0.01, captures.cost_seconds
    # The recorded steps' slowdown is the hook's overhead, taken once.
    assert abs(captures.slowed_steps() - SLOWDOWN * 0.2) < 1e-9 and captures.slowed_steps() == 0.0
    paid = captures.cost_seconds / 0.015  # seconds after it began: about 4.7
    captures._arm("slow")
    waited = 0.2
    while reads.started == ["/p/baseline"]:
        assert captures.busy and _paced(captures, clock, 3, 0.5) is None
        waited += 0.5
        assert waited < paid + 0.5, (waited, paid)  # nothing else holds it back
    assert waited >= paid, (waited, paid)  # the slow capture began once it was paid for
    out = _paced(captures, clock, 4)
    assert out is not None and out["ops"][0]["op"] == "mm (MatMul)", out
    assert abs(out["cost_seconds"] - SLOWDOWN * 1.0) < 0.01, out
    captures.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's heap")
def test_what_a_capture_held_is_given_back_once_it_is_read() -> None:
    """keras#9350's LSTM: the baseline capture's events took +165 MiB that glibc kept after
    they were freed, so the healthy fit's RSS rose 63 MiB at the capture's epoch and was
    judged its own growth. The read (here: 160 MiB of 4 KiB blocks, freed but the last)
    leaves the heap's free pages to the system."""
    from epochwatch.explain.captures import Captures

    heap = FreedHeap()
    grown: list[float] = []

    def read(_path: str, _n: int) -> Any:  # what TF's read of a capture leaves: freed pages
        grown.append(heap.leave())
        return {"mm (MatMul)": 0.01}, 3

    clock = _Epochs()
    captures = Captures(lambda: _Profiler(read), lambda: "/p", limit=60.0, clock=clock)
    captures._arm("baseline")
    before = rss_mib()
    _paced(captures, clock, 1)
    _paced(captures, clock, 2, 0.2)  # stopped and read back
    assert grown and grown[0] > 100, grown  # the read's blocks were resident once
    assert rss_mib() - before < 30, (rss_mib(), before)
    captures.close()
    heap.close()


class _Logged(_Profiler):
    def __init__(self, read: Callable[[str, int], Any], log: list[Any]) -> None:
        super().__init__(read)
        self.log = log

    def start(self, path: str) -> bool:
        self.log.append("start")
        return super().start(path)

    def stop(self) -> None:
        self.log.append("stop")


def test_a_capture_records_whole_steps_where_the_loop_says_them() -> None:
    """Where the loop says each step's begin (a Keras fit, counted loop steps), a capture
    records exactly its steps: it begins as the epoch's second step begins and ends as the
    step three later begins, on the training thread; a memory slice armed on the same
    anchor still starts at its own step. A loop that stops saying its steps gets a capture
    from the epoch record instead."""
    from epochwatch.explain.anchor import StepAnchor
    from epochwatch.explain.captures import Captures

    log: list[Any] = []
    reads = _Logged(lambda _path, _n: ({"mm (MatMul)": 0.01}, 3), log)
    anchor = StepAnchor()
    anchor.active = True
    clock = _Epochs()
    captures = Captures(lambda: reads, lambda: "/p", budget=1.0, clock=clock, anchor=anchor)
    captures._arm("slow")
    assert _paced(captures, clock, 1) is None and log == []  # armed for the next epoch's step 1
    anchor.arm(3, lambda: log.append("the last fit's slice"))
    anchor.loop_ended()  # a fit ends: its slice goes; the capture waits for the next fit's step
    assert anchor.at == 1
    anchor.arm(6, lambda: log.append("slice"))
    for step in range(8):
        log.append(step)
        anchor.begin(step)
    assert log == [0, 1, "start", 2, 3, 4, "stop", 5, 6, "slice", 7], log
    first = captures._open
    out = _paced(captures, clock, 2)
    assert out is not None and out["epochs"] == [2] and out["ops"][0]["op"] == "mm (MatMul)", out
    assert log[-1] == "stop"  # the record's stop: a second one does nothing
    log.clear()
    captures._done.clear()
    captures._arm("slow")
    _paced(captures, clock, 3)  # armed at step 1 again, but the loop says no steps now
    anchor.active = False
    assert log == [] and _paced(captures, clock, 4) is None and log == ["start"]  # from the record
    assert first is not None
    captures._stop(first)  # the first capture's timer, late: it stops nothing now
    assert log == ["start"]
    captures.close()
    assert log == ["start", "stop"] and anchor.at == sys.maxsize


def test_a_fit_too_short_to_pay_for_a_baseline_capture_keeps_its_budget_for_the_slow_one() -> None:
    """A 12-epoch fit of two 0.25 s steps an epoch: a baseline capture would cost about a
    third of a second, 20 s of cool-down, longer than the fit has left; then no slow capture
    could come. The baseline is not taken and the slow capture is, at once; where no plan
    says how long the run goes on (a custom loop), the baseline is taken."""
    from epochwatch.explain.captures import Captures

    reads = _Profiler(lambda _path, _n: ({"while (While)": 0.2}, 1))
    clock = _Epochs()
    captures = Captures(lambda: reads, lambda: "/p", clock=clock)
    captures._arm("baseline")
    clock.now += 0.5
    assert captures.on_epoch(3, 0.5, 2, epochs_left=8) is None and reads.started == []
    captures._arm("slow")
    assert _paced(captures, clock, 4, 0.5) is None and reads.started == ["/p"]
    out = _paced(captures, clock, 5, 0.5)
    assert out is not None and out["baseline_profile_dir"] is None and "taking most time" in out["summary"]
    captures.close()
    unplanned = Captures(lambda: reads, lambda: "/q", clock=clock)
    unplanned._arm("baseline")
    assert unplanned.on_epoch(3, 0.5, 2, epochs_left=None) is None and reads.started[-1] == "/q/baseline"
    unplanned.close()


def test_a_slowing_fit_reckons_what_is_left_at_the_pace_a_capture_records() -> None:
    """A 15-epoch fit of 16 steps an epoch whose epochs grow (0.39 s, then 0.62 s as its
    baseline window closes at the 3rd): a whole-step baseline (three steps) is expected to
    cost 0.6 of 0.12 s, 4.7 s of cool-down at 1.5%, with two epochs more 9.5 epochs at the
    epoch's pace. Eleven are left: taken. (At the earlier epochs' pace, 11 x 0.39 s, it was
    not, though the fit's time left only grows.) Nine left: not taken."""
    from epochwatch.explain.anchor import StepAnchor
    from epochwatch.explain.captures import Captures

    reads = _Profiler(lambda _path, _n: ({"while (While)": 0.2}, 1))
    clock = _Epochs()
    anchor = StepAnchor()
    anchor.active = True
    for left, taken in ((11, True), (9, False)):
        captures = Captures(lambda: reads, lambda: "/p", clock=clock, anchor=anchor)
        captures._arm("baseline")
        captures.on_epoch(3, 0.62, 16, epochs_left=left)
        assert (captures._open is not None) is taken, left
        captures.close()


def test_a_capture_that_held_no_whole_step_is_taken_again_twice_as_long() -> None:
    """On a loaded host a step can outlast a capture sized from the epoch before: no op time
    to read. The capture is taken once more, twice as long, instead of an empty answer."""
    from epochwatch.explain.captures import Captures

    read = {"/p/baseline#1": ({"while (While)": 0.01}, 3), "/p#2": ({"while (While)": 0.05}, 3)}
    reads = _Profiler(lambda path, n: read.get(f"{path}#{n}"))
    clock = _Epochs()  # the cool-down within the epoch: not what this tests
    captures = Captures(lambda: reads, lambda: "/p", limit=60.0, budget=1.0, clock=clock)
    captures._arm("baseline")
    assert _paced(captures, clock, 1, 1.0) is None  # the baseline capture begins
    assert _paced(captures, clock, 2, 1.0) is None and captures._open is None  # read back, kept
    captures._arm("slow")
    assert _paced(captures, clock, 5, 3.0) is None  # the slow capture begins
    assert _paced(captures, clock, 6, 3.0) is None  # it held no whole step: again, at once
    assert reads.started == ["/p/baseline", "/p", "/p"]
    out = _paced(captures, clock, 7, 3.0)
    assert out is not None and out["ops"][0]["op"] == "while (While)", out
    assert abs(out["ops"][0]["added_seconds_per_step"] - 0.04) < 1e-9
    captures.close()


def test_the_rss_a_profiler_capture_leaves_opens_no_memory_window() -> None:
    """TF's profiler leaves tens of MiB of native memory, settling over the epochs after
    the capture (a healthy custom loop: +19, +5, +3 MiB): the hook's own, not a leak to
    look into. It opened a memory window on RSS alone, whose slices cost more than an
    epoch of 60 ms and added RSS of their own; the run was then told its memory grew."""
    reads = _Profiler(lambda _path, _n: ({"mm (MatMul)": 0.01}, 3))
    written: list[Any] = []
    explainer = Explainer(
        lambda t, **f: written.append((t, f)), profile_dir=lambda: "/p", profiler=lambda: reads
    )
    mib, rss = 1 << 20, 700 << 20
    try:
        for n in range(2):
            _epoch(explainer, n, rss)
        explainer._captures._arm("baseline")  # as the baseline stack window asks
        for n, rise in enumerate([0, 19, 5, 3, 0, 0, 0], start=2):  # the capture begins at 2's record
            rss += rise * mib
            _epoch(explainer, n, rss)
        assert reads.started == ["/p/baseline"]
        assert explainer._memory_windows == 0, written
        # A leak after it is still looked into on RSS alone.
        for n in range(9, 13):
            rss += 8 * mib
            _epoch(explainer, n, rss)
        assert explainer._memory_windows == 1
    finally:
        explainer.close()


def test_a_capture_is_read_after_a_tracemalloc_slice_not_under_it() -> None:
    """A memory window's slice traces across epoch records; a capture's read-back allocates
    much (torch's took 1.0 s of CPU instead of 0.05 s under a slice), so it waits a record
    or two for the slice to end, and no capture starts meanwhile."""
    from epochwatch.explain.captures import Captures

    reads = _Profiler(lambda _path, _n: ({"aten::mm (CPU)": 0.01 * reads.reads}, 3))
    clock = _Epochs()  # the cool-down within the epoch: not what this tests
    captures = Captures(lambda: reads, lambda: "/p", limit=60.0, budget=1.0, clock=clock)
    captures._arm("baseline")
    assert _paced(captures, clock, 1, 1.0) is None and reads.started == ["/p/baseline"]
    captures._arm("slow")
    tracemalloc.start()
    try:
        assert _paced(captures, clock, 2, 1.0) is None and reads.reads == 0  # stopped, not read
        assert reads.started == ["/p/baseline"]  # the slow capture waits for the read
    finally:
        tracemalloc.stop()
    assert _paced(captures, clock, 3, 1.0) is None and reads.reads == 1  # read: the baseline
    assert reads.started == ["/p/baseline", "/p"]
    out = _paced(captures, clock, 4, 1.0)
    assert out is not None and out["ops"][0]["op"] == "aten::mm (CPU)" and out["epochs"] == [4], out
    tracemalloc.start()
    try:  # a script that traces all along: the read waits two records at most
        captures._done.clear()
        captures._arm("slow")
        _paced(captures, clock, 5, 1.0)
        assert [_paced(captures, clock, n, 1.0) is None for n in (6, 7)] == [True, True] and reads.reads == 2
        assert _paced(captures, clock, 8, 1.0) is not None and reads.reads == 3
    finally:
        tracemalloc.stop()
    captures.close()


def test_the_stack_sampler_is_never_the_thread_that_collects_garbage() -> None:
    """tf35873's loop hooked hung 1 run in 8: a collection on the sampler's thread freed a
    TensorFlow graph while the training thread executed a tf.function, and the graph's
    dealloc waited on a lock for good. The sampler's allocations never collect."""
    import gc

    collected_on: list[int] = []

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collected_on.append(threading.get_ident())

    threshold = gc.get_threshold()
    gc.set_threshold(5)  # a collection every few allocations: whoever allocates collects
    gc.callbacks.append(on_gc)
    try:
        window = StackWindow(threading.get_ident(), rate=200, limit_seconds=1.0)
        sampler = window._thread.ident
        while window.samples == 0:  # its start is threading's (allocations the window cannot cover)
            time.sleep(0.01)
        collected_on.clear()
        time.sleep(0.3)
        while_sampling = list(collected_on)
        # Its end allocates (threading's), once the training thread waits for it in close().
        window.close(1, 0.3)
    finally:
        gc.callbacks.remove(on_gc)
        gc.set_threshold(*threshold)
    assert window.samples > 10 and sampler not in while_sampling, (window.samples, len(while_sampling))
    assert gc.isenabled()


def test_the_training_thread_still_collects_while_the_stacks_are_sampled() -> None:
    """Collection paused for a whole window (seconds) let a step loop's garbage pile up: +50
    MiB of RSS that stayed after the window, said as the run's memory growth. It is off only
    while a sample allocates: the training thread's cycles are collected during the window."""
    import gc

    collected_on: list[int] = []

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collected_on.append(threading.get_ident())

    gc.callbacks.append(on_gc)
    try:
        window = StackWindow(threading.get_ident(), rate=200, limit_seconds=2.0)
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:  # a step loop making cyclic garbage
            for _ in range(200):
                cycle: list[Any] = []
                cycle.append(cycle)
            time.sleep(0.001)
        during = list(collected_on)
        window.close(1, 0.3)
    finally:
        gc.callbacks.remove(on_gc)
    assert threading.get_ident() in during and window.samples > 10, (len(during), window.samples)
    assert gc.isenabled()


def test_the_hooks_capture_and_slice_mark_the_intervals_they_cost() -> None:
    """A profiler capture from its start to its read-back (its memory held till then), and a
    tracemalloc slice while it traces, mark the interval records written meanwhile
    (`looking_inside`, explain/looking.py): their cost is the hook's, not the run's."""
    from epochwatch.explain.captures import Captures
    from epochwatch.explain.looking import LOOKING
    from epochwatch.explain.slices import Slicer

    LOOKING.since_last()
    LOOKING.since_last("epoch")
    assert LOOKING.since_last() is False
    clock = _Epochs()
    captures = Captures(
        lambda: _Profiler(lambda _p, _n: ({"mm (MatMul)": 0.01}, 3)), lambda: "/p", clock=clock
    )
    captures._arm("baseline")
    _paced(captures, clock, 1)  # the capture begins
    assert captures.busy and LOOKING.since_last() and LOOKING.since_last()  # still held
    _paced(captures, clock, 2, 0.2)  # stopped and read back
    assert LOOKING.since_last() is True and LOOKING.since_last() is False  # its last interval, then off
    captures.close()
    slicer = Slicer()
    try:
        slicer._state = "scheduled"
        slicer._start(60.0)
        assert slicer._state == "lead" and LOOKING.since_last() and LOOKING.since_last()
    finally:
        slicer.stop()
    assert LOOKING.since_last() is True and LOOKING.since_last() is False  # seen once more, then off
    # Epoch records ask on their own: the intervals' reading took nothing from them (what the
    # slice left in memory is said per epoch too).
    assert LOOKING.since_last("epoch") is True and LOOKING.since_last("epoch") is False
