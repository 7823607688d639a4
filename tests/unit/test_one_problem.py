"""One problem, one finding (issue 23): host growth and a slowdown that a retrace storm
explains are the retrace_storm finding's consequences, not findings of their own; growth
that goes on after the retraces stopped is its own finding. Online and offline agree."""

from __future__ import annotations

from typing import Any

import pytest

from bench import synthetic as syn
from epochwatch.analysis.online import OnlineAnalyzer
from epochwatch.analysis.units import MIB
from tests.support import analyze_records

STEPS = 25


def _traced(new: int, build: float) -> dict[str, Any]:
    cause = {"arg": "step", "change": "value", "was": "int 1", "now": "int 2"}
    block = {"new": new, "total": new, "causes": [cause]}
    return {"retraces": {"new": new, "graph_build_seconds": build, "functions": {"train_step": block}}}


def _run(*, retrace_until: int, epochs: int = 12) -> list[dict[str, Any]]:
    """A custom loop (tf32157's shape): a Python int `step` into a tf.function, a trace a
    step while `retrace_until` lasts, each trace holding 2 MiB and taking 0.12 s to build;
    the steps get slower while the traces pile up."""

    def make(i: int) -> dict[str, Any]:
        tracing = i < retrace_until
        rss = 700 * MIB + 50 * MIB * i
        seconds = 2.0 + (0.3 * i + 3.0 if tracing else 0.3 * i)
        fields: dict[str, Any] = {"seconds": seconds, "steps": STEPS, "host": syn.host_block(rss)}
        fields["step_seconds"] = {"median": seconds / STEPS}
        if tracing:
            fields.update(_traced(STEPS, 0.12 * STEPS + 0.3 * i))
        return fields

    return syn.trace(epochs, make)


def _online(records: list[dict[str, Any]]) -> dict[tuple[str, str | None], dict[str, Any]]:
    """What the hook says, each finding as last said (updates replace it), its analysis
    skipping every third record's evaluation as its time budget makes it do."""
    online = OnlineAnalyzer(records[0], updates=True)
    said: dict[tuple[str, str | None], dict[str, Any]] = {}
    out = [x for k, rec in enumerate(records[1:]) for x in online.add(rec, evaluate=k % 3 != 1)]
    for r in [*out, *online.finish()]:
        said[(r["kind"], r.get("target"))] = r
    return said


def test_a_retrace_storm_carries_the_growth_and_slowdown_it_explains() -> None:
    records = _run(retrace_until=12)
    found = analyze_records(records)
    assert [f.kind for f in found] == ["retrace_storm"], [f.title for f in found]
    storm = found[0]
    assert "RSS +" in storm.title and "of the time tracing" in storm.title
    assert storm.evidence["rss_now"] > storm.evidence["rss_before"]
    assert {k for k, _ in _online(records)} == {"retrace_storm"}


def test_the_same_growth_without_retraces_is_said() -> None:
    """The control: the growth and slowdown alone are findings (so the test above can fail)."""
    found = {f.kind for f in analyze_records(_run(retrace_until=0))}
    assert {"host_memory_growth", "slowdown"} <= found


def test_growth_that_goes_on_after_the_retraces_stopped_is_its_own_finding() -> None:
    records = _run(retrace_until=6, epochs=16)
    found = analyze_records(records, episodes=True)  # as `report` shows them, and the hook last said them
    assert {"retrace_storm", "host_memory_growth"} <= {f.kind for f in found}
    said = _online(records)
    assert {f.key: (f.severity, f.title) for f in found} == {
        k: (r["severity"], r["title"]) for k, r in said.items()
    }


def _custom_loop(epochs: int = 4, per_epoch: int = 12, traces: int = 2) -> list[dict[str, Any]]:
    """tf32157 as the hook traces it: auto epochs of 24 steps, an interval every 2 steps
    (RSS and step time climbing with every trace), the retraces counted per interval and
    per epoch (traces=0: the same growth with no retraces at all)."""
    out = [syn.run_start()]
    t, step = syn.T0 + 1.0, 0
    for e in range(epochs):
        start = t
        for k in range(per_epoch):
            step += 2
            median = 0.12 + 0.004 * step
            rss = 720 * MIB + 2.2 * MIB * step
            out.append(
                {"type": "interval", "run_id": "synthetic", "t": t + 2 * median, "epoch": e,
                 "index": e * per_epoch + k, "source": "auto", "step": step, "steps": 2,
                 "seconds": 2 * median, "step_seconds": {"median": median}, "host": {"rss_bytes": int(rss)},
                 "retraces": {"new": traces, "graph_build_seconds": 0.8 * traces * median}}
            )  # fmt: skip
            t += 2 * median
        fields = {"source": "auto", "steps": 2 * per_epoch, "host": syn.host_block(rss)}
        if traces:
            fields.update(_traced(traces * per_epoch, 0.8 * (t - start)))
        out.append(syn.epoch_record("synthetic", e, start, t - start, **fields))
    out.append({"type": "run_end", "run_id": "synthetic", "t": t, "ended": "completed", "epochs": epochs})
    return out


@pytest.mark.parametrize("epochs", [4, 1])  # 1: one pass over a large dataset, all warm-up
def test_a_custom_loop_retracing_every_step_gets_one_finding_online_and_offline(epochs: int) -> None:
    records = _custom_loop(epochs)
    found = analyze_records(records)
    assert [f.kind for f in found] == ["retrace_storm"], [f.title for f in found]
    assert found[0].evidence["argument"] == "step" and "of the time tracing" in found[0].title
    assert epochs == 1 or "RSS +" in found[0].title  # one epoch: no RSS before it in the epochs
    said = _online(records)
    assert {k for k, _ in said} == {"retrace_storm"}
    last = analyze_records(records, episodes=True)  # as `report` shows it: the run's end's count
    assert [(r["severity"], r["title"]) for r in said.values()] == [(last[0].severity, last[0].title)]


def test_traces_only_in_the_first_epoch_are_warm_up_not_a_storm() -> None:
    """JAX's eager ops (or any framework's first pass) trace a function per shape in the first
    epoch, one per step and more, then never again: warm-up, however many there were."""

    def make(i: int) -> dict[str, Any]:
        fields: dict[str, Any] = {"seconds": 0.2, "steps": 8, "host": syn.host_block(350 * MIB)}
        return {**fields, **(_traced(12, 2.5) if i == 0 else {})}

    records = syn.trace(14, make)
    assert "retrace_storm" not in {f.kind for f in analyze_records(records)}
    assert "retrace_storm" not in {k for k, _ in _online(records)}


def test_a_custom_loop_that_grows_without_retraces_is_said() -> None:
    found = {f.kind for f in analyze_records(_custom_loop(traces=0))}
    assert {"host_memory_growth", "slowdown"} <= found


def test_each_interval_counts_the_judged_new_traces_since_the_last() -> None:
    """What the interval records carry (hook side): tf.data's own traces left out, reset
    by each interval and by the epoch's end."""
    from epochwatch.integrations.tf import RetraceLedger

    ledger = RetraceLedger()
    for name in ("train_step", "train_step", "Dataset_map_f"):
        ledger.count(name, [], 0.5)
    assert ledger.interval() == {"new": 2, "graph_build_seconds": 1.0}
    assert ledger.interval() == {"new": 0, "graph_build_seconds": 0.0}
    ledger.count("train_step", [], 0.5)
    assert (ledger.drain() or {})["new"] == 4 and ledger.interval()["new"] == 0  # the epoch ended


def _epoch_arg_loop(
    *,
    epochs: int = 12,
    jump: float = 23 * MIB,
    quiet: float = 0.0,
    trace_until: int = 99,
    intervals: bool = True,
    after: float = 0.0,
) -> list[dict[str, Any]]:
    """TF's pix2pix tutorial loop as the hook traces it (bench/real_scripts/
    pix2pix_epoch_arg_retrace.py): a Python int `epoch` into the step function, so the first
    step of each epoch traces anew (0.44 s of graph building) and RSS jumps by `jump` in the
    interval that holds it; `quiet` more per epoch in the other intervals (a leak beside);
    no new traces from epoch `trace_until` on, the jumps going on; `after`: the share of each
    jump that lands in the interval after the traced one (the new graph's first full runs)."""
    out = [syn.run_start()]
    t, step, rss = syn.T0 + 1.0, 0, 800 * MIB
    cause = {"arg": "epoch", "change": "value", "was": "int 1", "now": "int 2"}
    for e in range(epochs):
        start, tracing = t, e < trace_until
        for k, (steps, seconds) in enumerate([(1, 0.7), (19, 0.2), (20, 0.2)]):
            step += steps
            traced = tracing and k == 0
            share = {0: 1.0 - after, 1: after}.get(k, 0.0) if tracing else {0: 1.0}.get(k, 0.0)
            rss += jump * share + (0.0 if k == 0 else quiet / 2) + (0.3 * MIB if k == 1 else 0.0)
            t += seconds
            if intervals:
                out.append(
                    {"type": "interval", "run_id": "synthetic", "t": t, "epoch": e, "index": 3 * e + k,
                     "source": "auto", "step": step, "steps": steps, "seconds": seconds,
                     "step_seconds": {"median": seconds / steps}, "host": {"rss_bytes": int(rss)},
                     "retraces": {"new": int(traced), "graph_build_seconds": 0.44 if traced else 0.0}}
                )  # fmt: skip
        fields: dict[str, Any] = {"source": "auto", "steps": 40, "host": syn.host_block(rss)}
        if tracing:
            block = {"new": 1, "total": e + 1, "causes": [cause]}
            fields["retraces"] = {"new": 1, "graph_build_seconds": 0.44, "functions": {"train_step": block}}
        out.append(syn.epoch_record("synthetic", e, start, t - start, **fields))
    out.append({"type": "run_end", "run_id": "synthetic", "t": t, "ended": "completed", "epochs": epochs})
    return out


@pytest.mark.parametrize("intervals, after", [(True, 0.0), (False, 0.0), (True, 0.35)])
def test_growth_that_comes_with_one_trace_an_epoch_is_the_retrace_storms(
    intervals: bool, after: float
) -> None:
    """pix2pix: one trace of a big GAN step an epoch, +23 MiB each, said once (it was also a
    host_memory_growth with the generic leak fix); on intervals and on epochs alone; and
    where a third of each jump lands in the next interval (tensorflow#34025's padded
    batches: the new graph's first full runs), said twice before."""
    records = _epoch_arg_loop(intervals=intervals, after=after)
    found = analyze_records(records)
    assert [f.kind for f in found] == ["retrace_storm"], [f.title for f in found]
    assert found[0].evidence["argument"] == "epoch" and "RSS +" in found[0].title
    assert {k for k, _ in _online(records)} == {"retrace_storm"}


@pytest.mark.parametrize(
    "leak",
    [
        {"quiet": 12 * MIB},  # a leak beside: the steps that do not trace grow too
        {"jump": 90 * MIB},  # far beyond what one trace of 0.44 s of building holds
        {"trace_until": 5, "epochs": 16},  # the jumps go on in epochs that trace no more
    ],
)
def test_a_leak_beside_one_trace_an_epoch_is_its_own_finding(leak: dict[str, Any]) -> None:
    found = {f.kind for f in analyze_records(_epoch_arg_loop(**leak))}
    assert {"retrace_storm", "host_memory_growth"} <= found, found


def _generator_fit(wait_share: float) -> list[dict[str, Any]]:
    """tensorflow#56258's from_generator fit as the hook traces it: 8 epochs of 100 steps,
    an interval every 10 steps, the step time rising 14 -> 22 ms, the epochs waiting
    `wait_share` of their time for the generator."""
    out = [syn.run_start()]
    t = syn.T0 + 1.0
    for e in range(8):
        start = t
        for k in range(10):
            median = 0.014 + 0.001 * e + 0.0001 * k
            out.append(
                {"type": "interval", "run_id": "synthetic", "t": t + 10 * median, "epoch": e, "fit": 0,
                 "index": e * 10 + k, "source": "keras", "step": 10 * k + 10, "steps": 10,
                 "seconds": 10 * median, "step_seconds": {"median": median}}
            )  # fmt: skip
            t += 10 * median
        seconds = t - start
        out.append(
            syn.epoch_record(
                "synthetic", e, start, seconds, steps=100, input_wait_seconds=wait_share * seconds
            )
        )
    out.append({"type": "run_end", "run_id": "synthetic", "t": t, "ended": "completed", "epochs": 8})
    return out


def test_step_time_that_is_mostly_waiting_for_input_is_said_so() -> None:
    """Judged on intervals (which carry no input wait), tensorflow#56258's step time read
    "grows 7.5% per epoch ... inside the compiled step": the step waited for its next batch."""
    (f,) = [f for f in analyze_records(_generator_fit(0.7), episodes=True) if f.kind == "slowdown"]
    assert f.evidence["likely_causes"][0]["column"] == "input_wait", f.title
    assert "likely cause: time waiting for input (70% of the epochs' time)" in f.title
    assert "see input_bound" in f.hint
    (f,) = [f for f in analyze_records(_generator_fit(0.1), episodes=True) if f.kind == "slowdown"]
    assert not f.evidence["likely_causes"], f.title
