"""slowdown: epoch time (or step time) that keeps growing or jumps and stays, with its likely causes.

Series: epoch `seconds`; when that does not grow, `step_seconds.median` (the training
steps can slow down while validation hides it, or the other way round). Three shapes:
a trend (trend.assess_growth with RULE; see docs/detectors.md for how RULE was tuned),
a short run's blatant ramp (BLATANT, see analysis/growth.py), and a step: a sudden
lasting change of level (shapes.assess_step with STEP), reported with its onset and size.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from epochwatch.analysis import frameworks
from epochwatch.analysis.attribution import likely_causes
from epochwatch.analysis.detectors import models_in_loop, retraces
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import CRITICAL, INFO, WARNING, Finding, grew_since, severity_rank
from epochwatch.analysis.growth import judge, judge_through
from epochwatch.analysis.leaks import growth_evidence
from epochwatch.analysis.shapes import BlatantRule, Step, StepRule, assess_step
from epochwatch.analysis.trend import Growth, GrowthRule
from epochwatch.analysis.units import fmt_seconds
from epochwatch.analysis.view import RunAtEpoch, Window
from epochwatch.analysis.waiting import judge as judge_cpu
from epochwatch.analysis.waiting import own_work_explains

KIND = "slowdown"
RULE = GrowthRule()  # trend.py's defaults: +0.2%/epoch and +5% over a 60-epoch window
PERSISTENCE = 3
# Short runs: +3%/epoch at least and +20% over the run's points, close to a straight line.
BLATANT = BlatantRule(min_rel_slope=0.03, min_rel_growth=0.2, min_r2=0.8, alpha=0.01)
# A step: 1.5x at least, every epoch after the onset 15% slower than every epoch before it,
# a shift of 10 standard errors, 2 epochs before it and 3 at the new level (lasting).
STEP = StepRule(min_before=2, min_after=3, min_ratio=1.5, min_gap=1.15, min_t=10.0)
# On sub-epoch intervals (a second or a few steps each) three points are three seconds: a
# busy neighbour on a shared machine, not a lasting change (a 1-epoch fit of 10 steps of a
# k-fold loop read "1.8x slower" from 0.77, 0.77 -> 1.36, 1.42, 1.28 s). More on each side.
STEP_INTERVALS = StepRule(min_before=4, min_after=8, min_ratio=1.5, min_gap=1.15, min_t=10.0)
# ... and on any points, the new level must have held this long (short epochs: see _lasted).
LASTING_SECONDS = 1.0
# Severity: critical once the time per epoch has doubled against the run's own
# baseline, warning from +10%, info below (a trend that is sure but still small).
CRITICAL_RATIO = 2.0
WARNING_RATIO = 1.1
# ... and critical too when it grows so fast (10%/epoch) that it doubles within ~10 epochs.
CRITICAL_RATE = 0.1

_HINTS = {
    "dir_files": "a directory this run writes to keeps filling up, and something lists or scans it every "
    "epoch: keep at most K checkpoints (ModelCheckpoint(..., save_best_only=True) or "
    "tf.train.CheckpointManager(max_to_keep=K)) and avoid globbing the directory in callbacks",
    "dir_bytes": "a directory this run writes to keeps growing: rotate or prune what it writes "
    "(CheckpointManager(max_to_keep=K), TensorBoard logs per run) so saving and listing stay cheap",
    "retrace_new": "tf.function keeps retracing: see the retrace_storm finding; pass changing Python "
    "values as tensors / tf.Variable, or give the function an input_signature",
    "live_functions": "concrete functions pile up (retracing): see retrace_storm; pass changing Python "
    "values as tensors and avoid creating tf.functions inside the loop",
    "graph_build": "time goes into building graphs (retracing): see retrace_storm",
    "rss": "memory keeps growing along with the slowdown: see host_memory_growth (e.g. a callback "
    "or list that keeps every batch's outputs)",
    "swap": "the process is being swapped out: reduce memory use or give the job more memory",
    "sys_swap_used": "the host is swapping: reduce memory use of this or other jobs",
    "contention_cpu": "other processes take the CPU: move them, pin this job (taskset) or lower "
    "tf.config.threading inter/intra op threads to what is free",
    "cpu_share": "this process gets less CPU per wall second: other processes or I/O waits; check "
    "`epochwatch status` / top while it runs",
    "input_wait": "the steps wait longer for their input every epoch: the input pipeline slows down (data read "
    "from a slower or busier disk, a generator or PyDataset doing more work per batch, a tf.data cache or "
    "shuffle buffer that no longer fits); see input_bound for the fixes by input kind",
    "gpu_others_sm": "other processes compute on a GPU this run uses: see gpu_contention (move one job "
    "to a free GPU, or keep GPUs to one job)",
    "callback_seconds": "the callbacks' own time grows: make on_epoch_end work constant per epoch "
    "(no listing or re-reading of everything written so far, uploads in the background)",
    "cb_seconds": "a callback's own time grows every epoch: make its on_epoch_end work constant "
    "(no listing or re-reading of everything written so far, uploads in the background)",
    "steps": "epochs run more steps: the dataset grows (a repeat() without steps_per_epoch, or data "
    "appended every epoch)",
    "val_seconds": "validation takes longer: check validation_steps and what the validation set does",
    "gpu_throttled": "the GPU clocks down: see gpu_throttling (cooling, power cap)",
    "tf_current": "GPU memory grows with the slowdown: see gpu_memory_growth",
}
_WAITING_HINT = (
    "the added time is spent off the CPU with no other process competing for it: the process waits "
    "(a sleep, I/O, a lock, a remote call such as an upload or a metrics server); look at what the "
    "named part does each epoch, e.g. py-spy dump --pid <pid> during a slow epoch, and make that wait "
    "constant (bounded queues, uploads in the background, timeouts)"
)
_DEFAULT_HINT = (
    f"{frameworks.PROFILE_IT} (keras.callbacks.TensorBoard(profile_batch=(10, 20)) "
    "or tf.profiler); usual causes are Python-side state that grows every epoch (lists of outputs, "
    "metrics kept forever), a growing tf.data cache, or callbacks doing more work each epoch"
)

# A step's advice; torch's and JAX's name their own profiler (frameworks.hint: "slowdown:step").
_STEP_HINT = (
    "something changed at that epoch and stayed: compare a profile of an epoch before and after it "
    "(keras.callbacks.TensorBoard(profile_batch=...)); usual causes are a callback or schedule that "
    "starts at that epoch, data that changed (longer sequences, a bigger dataset), another job on the "
    "same machine, or a device that fell back to a slower path"
)


def _severity(g: Growth, baseline: float) -> str:
    ratio = g.now / baseline if baseline > 0 else 1.0
    if ratio >= CRITICAL_RATIO or g.rel_slope >= CRITICAL_RATE:
        return CRITICAL
    if ratio >= WARNING_RATIO:
        return WARNING
    return INFO


def _finding(
    view: RunAtEpoch, what: str, target: str | None, g: Growth, w: Window, rule: str, hold: int | None
) -> Finding:
    head = view.head("seconds" if target is None else "step_median")[:3]
    baseline = sorted(head)[len(head) // 2] if head else g.baseline  # the run's first epochs
    now = _recent(view, "seconds" if target is None else "step_median")
    evidence: dict[str, Any] = growth_evidence(view, g, w, now)
    severity = _severity(g, baseline)
    causes = _causes(view, target, w, now, severity) or (_waiting_for_input(view, w) if target else [])
    evidence.update(run_baseline=baseline, likely_causes=causes, shape="trend", rule=rule, current=now)
    evidence["base"] = baseline
    rate, per = 100 * g.rel_slope, view.per()
    per_epoch = evidence["slope_per_epoch"] if view.unit == "interval" and g.slope else None
    if per_epoch is not None:  # said per epoch: an interval is no unit to read
        rate, per = rate * per_epoch / g.slope, "per epoch (judged on sub-epoch intervals)"
    # Epochs as Keras prints them (from 1); the evidence keeps the trace's 0-based numbers.
    span = evidence.get("fits") or evidence["epochs"]  # fits of a loop, or epochs (from 1 in text)
    noun = "fit" if view.unit == "fit" else "epoch"
    over = f"in {noun} {span[0] + 1}" if span[0] == span[-1] else f"over {noun}s {span[0] + 1}-{span[-1] + 1}"
    title = f"{what} grows {rate:.1f}% {per}: {fmt_seconds(evidence['start'])} -> {fmt_seconds(now)} {over}"
    verdict = judge_cpu(view, w) or _busier_epochs(view, w)  # once: the busier host and the waiting
    waiting = verdict[1] if verdict is not None and verdict[0] == "waits" and target is None else None
    if waiting is not None:
        evidence["waiting"] = waiting
    if causes:
        title += f"; likely cause: {causes[0]['series']} ({causes[0]['test']})"
    if waiting is not None:
        title += "; the process waits (sleep, I/O, a lock or a remote call), " + _COMPETITION.get(
            waiting["competition"], "nobody competes for the CPU"
        )
        if waiting.get("share_of_added_time"):
            title += f"; the added time is in {waiting['where']}"
    default = frameworks.hint(KIND, frameworks.framework(view.start), _DEFAULT_HINT)
    hint = _HINTS.get(causes[0]["column"], default) if causes else default
    if waiting is not None and not causes:
        hint = _WAITING_HINT
    if causes and causes[0]["column"] == "input_wait" and view.reported("input_bound", "input"):
        severity = INFO  # one problem, one finding: the input pipeline's, said by input_bound
        title += "; the input pipeline's, see input_bound"
    found = Finding(KIND, severity, title, evidence, hint, target, view.epoch_number(view.last), hold=hold)
    return _unless_busier(view, found, verdict)


# Step time judged on intervals is mostly waiting for the input where the epochs it spans
# waited this share of their time or more.
INPUT_SHARE = 0.5


def _waiting_for_input(view: RunAtEpoch, w: Window) -> list[dict[str, Any]]:
    """The input wait as the cause of a step-time slowdown whose steps mostly wait for it
    (over the epochs the window spans): tensorflow#56258's `from_generator` fit (78% waiting,
    the generator slower in some epochs) read "step time grows 7.5% per epoch ... inside the
    compiled step", where the step waits for its next batch (the attribution's test of the
    input wait is on epoch time; intervals carry none)."""
    series = view.series if view.unit == "epoch" else view.run.epoch_series
    if view.unit not in ("epoch", "interval") or series is None or not w.indexes:
        return []
    first, last = view.epoch_number(w.indexes[0]), view.epoch_number(w.indexes[-1])
    waits = seconds = 0.0
    for i in range(series.offset, series.count):
        number = series.value("epoch", i)
        wait, took = series.value("input_wait", i), series.value("seconds", i)
        if first <= number <= last and wait == wait and took == took:
            waits, seconds = waits + wait, seconds + took
    if seconds <= 0 or waits / seconds < INPUT_SHARE:
        return []
    share = round(waits / seconds, 3)
    test = f"{100 * share:.0f}% of the epochs' time"
    return [
        {
            "series": "time waiting for input",
            "column": "input_wait",
            "key": None,
            "test": test,
            "share": share,
        }
    ]


# Epochs are few where intervals judge (long ones): five say a host got busier.
EPOCHS_BUSIER = 5


# What a waiting slowdown's title says of the CPU (waiting.judge's `competition`).
_COMPETITION = {
    "steady": "on a host loaded all along (its load did not rise)",
    "not taken": "not for a CPU (its threads waited no longer for one)",
}


def _busier_epochs(view: RunAtEpoch, w: Window) -> tuple[str, dict[str, Any]] | None:
    """The busier-host verdict of an interval window's epochs, where the intervals' own
    says nothing (traces whose intervals carry no CPU time; an interval's CPU figures count
    from its run's second interval record): an eager loop beside a test suite on two cores
    went from 0.9 to 2.5-5.1 s epochs with its own CPU flat at 0.9-1.1 s an epoch, and its
    step time read "critical slowdown ... 63ms -> 91ms" from intervals."""
    series = view.run.epoch_series
    if view.unit != "interval" or series is None or not w.indexes:
        return None
    positions = view.run.interval_positions
    end = positions[view.last] if view.last < len(positions) else series.count
    epochs = RunAtEpoch(replace(view.run, series=series), end, unit="epoch", final=view.final)
    first = view.epoch_number(w.indexes[0])
    times = epochs.window("seconds", size=60)
    at = next((k for k, i in enumerate(times.indexes) if epochs.epoch_number(i) >= first), len(times.indexes))
    start = max(0, at - 3)  # the window's epochs and a few before
    verdict = judge_cpu(epochs, Window(times.values[start:], times.indexes[start:]), least=EPOCHS_BUSIER)
    return verdict if verdict is not None and verdict[0] == "busier" else None


def _unless_busier(view: RunAtEpoch, found: Finding, verdict: tuple[str, dict[str, Any]] | None) -> Finding:
    """A slowdown whose added time is not the process's own CPU work while other tasks want
    the CPU more and more is the host getting busier, not the run's doing: info, said so
    (`evidence.host_busier`); one whose own CPU per epoch (or fit) grows keeps its severity.
    `verdict`: waiting.judge's over the finding's points."""
    if verdict is None or verdict[0] != "busier":
        return found
    busy = verdict[1]
    per = "fit" if view.unit == "fit" else "epoch"
    cpu = busy[f"cpu_seconds_per_{per}"]
    rivals = busy["competition"]
    said = "".join(f" {v[0]} -> {v[1]}" for v in rivals.values() if isinstance(v, list))
    if "onset_epoch" in rivals:  # another job that started: a step up of the demand
        said += f" from epoch {rivals['onset_epoch'] + 1}"
    title = (
        f"{found.title}; the host got busier ({rivals['evidence']}{said}) "
        f"while the process's own CPU per {per} stayed {fmt_seconds(cpu[0])} -> {fmt_seconds(cpu[1])}"
    )
    evidence = {**found.evidence, "host_busier": busy}
    return replace(found, severity=INFO, title=title, evidence=evidence, hint=_HINTS["contention_cpu"])


def _causes(
    view: RunAtEpoch, target: str | None, w: Window, now: float, severity: str, measure: str = ""
) -> list[dict[str, Any]]:
    """The likely causes; those of the finding as last reported while this evaluation can
    bring no update (the engine keeps a reported episode's new state only when it grew, got
    graver or names its cause for the first time, and never after it ended). Attribution is
    most of a slowdown's cost (about 8 ms an epoch on a 60-epoch window); one without a
    cause yet is attributed again at each of the engine's rechecks (engine.EPISODE_RECHECK)."""
    last = view.last_reported(KIND, target)
    if last is not None:
        known = last.evidence.get("likely_causes")
        quiet = severity_rank(severity) <= severity_rank(last.severity) and not grew_since(
            last, now, view.final
        )
        if last.ended_epoch is not None or (quiet and known):
            return list(known) if isinstance(known, list) else []
    return likely_causes(view, w, measure=measure or ("seconds" if target is None else "step_median"))


def _step_finding(view: RunAtEpoch, what: str, target: str | None, st: Step, w: Window) -> Finding:
    window = Window(w.values[-st.n :], w.indexes[-st.n :])
    onset_index = window.indexes[st.at]
    onset = view.epoch_number(onset_index)
    now = window.values[-1]
    evidence: dict[str, Any] = {
        "shape": "step",
        "onset_epoch": onset,
        "before": st.before,
        "after": st.after,
        "ratio": st.ratio,
        "now": now,
        "current": now,
        "base": st.before,
        "epochs": [view.epoch_number(window.indexes[0]), view.epoch_number(window.indexes[-1])],
        "points_before": st.at,
        "points_after": st.n - st.at,
    }
    if view.unit != "epoch":  # the points it was judged on (the engine ends an episode on its own)
        evidence["unit"] = view.unit
    after = Window(window.values[max(0, st.at - 2) :], window.indexes[max(0, st.at - 2) :])
    severity = CRITICAL if st.ratio >= CRITICAL_RATIO else WARNING
    causes = _causes(view, target, after, now, severity, measure="seconds")
    evidence["likely_causes"] = causes
    at = f"epoch {onset + 1}"  # as Keras counts; on a loop's fits, the fit (from 1)
    fit = view.fit_number(onset_index) if view.unit == "fit" else None
    if fit is not None:
        evidence["onset_fit"] = fit
        at = f"fit {fit + 1}"
    title = (
        f"{what} {st.ratio:.1f}x slower from {at}: {fmt_seconds(st.before)} -> "
        f"{fmt_seconds(st.after)} (now {fmt_seconds(now)})"
    )
    if causes:
        title += f"; moves with {causes[0]['series']}"
    fw = frameworks.framework(view.start)
    hint = (
        _HINTS.get(causes[0]["column"], frameworks.hint(KIND, fw, _DEFAULT_HINT))
        if causes
        else frameworks.hint(f"{KIND}:step", fw, _STEP_HINT)
    )
    found = Finding(KIND, severity, title, evidence, hint, target, view.epoch_number(view.last), hold=1)
    return _unless_busier(view, found, judge_cpu(view, w, onset_index))


def _lasted(view: RunAtEpoch, after: list[int]) -> bool:
    """Whether a step's new level has held LASTING_SECONDS of the run's time, as well as its
    points: three epochs of 30 ms are a tenth of a second, a neighbour's burst, not a change
    that lasts (a healthy 30-epoch fit beside the other test worker: "1.6x slower from epoch
    18: 32ms -> 51ms", back to 30 ms eight epochs, 0.4 s, later). A second, not more: a real
    step in 0.1 s epochs is still said ten epochs after it began."""
    held = [view.series.value("seconds", i) for i in after]
    return sum(s for s in held if s == s) >= LASTING_SECONDS


def _recent(view: RunAtEpoch, column: str) -> float:
    """The median of the newest 3 values: the level now, robust to one odd epoch."""
    w = view.window(column, size=3)
    return sorted(w.values)[len(w.values) // 2] if w.values else float("nan")


def current(view: RunAtEpoch, finding: Finding) -> float:
    if finding.target == FIT_TARGET:
        return _recent(_fit_view(view), "step_median")
    return _recent(view, "seconds" if finding.target is None else "step_median")


def _own_work_explains(cpu: Growth, time: Growth) -> bool:
    return own_work_explains((cpu.start, cpu.now), (time.start, time.now))


def _judge(view: RunAtEpoch, column: str, what: str, target: str | None) -> Finding | None:
    verdict = judge(view, column, RULE, blatant=BLATANT)
    if verdict is None and column == "seconds" and view.unit == "epoch":
        verdict = judge_through(view, column, "cpu_seconds", RULE, _own_work_explains)
    per_step = column == "step_median"
    if verdict is not None:
        g = verdict.growth
        if retraces.explains(view, verdict.window.indexes, added=g.now - g.start, per_step=per_step):
            return None  # one problem, one finding: time spent tracing is retrace_storm's
        return _finding(view, what, target, g, verdict.window, verdict.rule, verdict.hold)
    rule = STEP_INTERVALS if view.unit == "interval" else STEP
    w = view.window(column, size=rule.window)
    st = assess_step(w.values, rule)
    if (
        st is not None
        and _lasted(view, w.indexes[-st.n :][st.at :])
        and not retraces.explains(view, w.indexes, added=st.after - st.before, per_step=per_step)
    ):
        return _step_finding(view, what, target, st, w)
    return None


FIT_TARGET = "time per epoch of each fit"


def _fit_view(view: RunAtEpoch) -> RunAtEpoch:
    """The run's fits as a series, cut where `view` is (the fits that ended before it)."""
    if view.unit == "fit":
        return view
    run = view.run
    ended = run.fit_ends_dropped + sum(1 for pos in run.fit_end_positions if pos < view.end)
    return RunAtEpoch(run.fit_view(), ended, unit="fit")


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.unit == "fit":  # a loop of fits that gets slower each iteration (per epoch of each fit)
        loop = view.last_reported(models_in_loop.KIND, None)
        if view.reported(KIND, None) or view.reported(KIND, "step time"):
            return []
        if loop is not None and "epoch_seconds_now" in loop.evidence:
            return []  # a loop of new models that said its epochs got slower: one problem, one finding
        if len(set(view.window("work", size=RULE.window).values)) > 1:
            return []  # a sweep of other sizes (model, batch, steps): its fits are not the same work
        f = _judge(view, "step_median", "the time per epoch of each fit", FIT_TARGET)
        return [f] if f is not None else []
    if view.unit != "epoch":  # intervals: their seconds are the clock's period; steps tell
        f = None if view.reported(KIND, None) else _judge(view, "step_median", "step time", "step time")
        return [f] if f is not None else []
    # One slowdown, one finding: once the step time's was reported (from intervals, or
    # because epoch time did not grow), the epoch time's view of it is no second finding.
    if not view.done(KIND, None) and not view.reported(KIND, "step time"):
        f = _judge(view, "seconds", "epoch time", None)
        if f is not None:
            return [f]
    if not view.reported(KIND, None):
        f = _judge(view, "step_median", "step time", "step time")
        if f is not None:
            return [f]
    return []


# The verdict at the run's end (Detector.verdict). A step is a lasting change of level: one
# whose old level came back for at least this share of its epochs, and its new level again
# after that (as often, in this share of the epochs from the first one back), is two levels
# that mix, not a step (alf#91's summaries on a loaded VM, plain too: 0.30 and 0.62 s epochs at
# random, three slow in a row after two fast read "critical: 2.1x slower from epoch 4";
# keras#20894's mixed precision loop, 0.38 or 0.62 s: "1.6x slower from epoch 5").
MIXED_SHARE = 0.2
# An episode that ended is no longer the pace of the run: what it cost is its consequence,
# a warning when it added this share of the run's time (as the +10% of WARNING_RATIO), else info.
ENDED_COST_SHARE = 0.1

_MIXED_HINT = (
    "epoch times that mix two levels, the faster one the level before the 'step', come from the host "
    "(a loaded or shared machine: a run without the hook shows the same levels) or from work done in "
    "some epochs only (validation or checkpoints every N epochs, skipped steps); to tell which, compare "
    "a profile of a slow epoch with one of a fast one (keras.callbacks.TensorBoard(profile_batch=...))"
)


def _onset(last: Finding) -> int:
    """A step's onset epoch, else the first epoch of the window it was judged on (-1: none)."""
    onset = last.evidence.get("onset_epoch")
    if isinstance(onset, int):
        return onset
    epochs = last.evidence.get("epochs")
    return epochs[0] if isinstance(epochs, list) and epochs and isinstance(epochs[0], int) else -1


def _episode(view: RunAtEpoch, last: Finding) -> tuple[list[float], list[float]] | None:
    """The values of `last`'s measure from its onset (a step's, else its window's first epoch)
    to the run's end, and all the run's values of it (in its fit, where it names one)."""
    column = "seconds" if last.target is None else "step_median"
    onset, fit = _onset(last), last.evidence.get("fit")
    if onset < 0:
        return None
    since: list[float] = []
    every: list[float] = []
    for i in range(view.series.offset, view.end):
        v = view.series.value(column, i)
        if v != v:
            continue
        every.append(v)
        if (fit is None or view.value("fit", i) == fit) and view.epoch_number(i) >= onset:
            since.append(v)
    return since, every


def _mixed_levels(since: list[float], before: float, after: float) -> dict[str, Any] | None:
    """Whether a step's epochs since its onset mix its two levels (see MIXED_SHARE): each
    epoch is at the old level or the new one by the geometric mean of the two."""
    if not (before > 0 and after > before) or not since:
        return None
    mid = math.sqrt(before * after)
    slow = [v >= mid for v in since]
    if False not in slow:
        return None
    back = slow.index(False)
    again = sum(slow[back:])
    if len(slow) - sum(slow) < MIXED_SHARE * len(slow) or again < max(2.0, MIXED_SHARE * (len(slow) - back)):
        return None
    fast_values = sorted(v for v in since if v < mid)
    slow_values = sorted(v for v in since if v >= mid)
    return {
        "levels": [fast_values[len(fast_values) // 2], slow_values[len(slow_values) // 2]],
        "epochs": [len(fast_values), len(slow_values)],
        "between": mid,
    }


def verdict(view: RunAtEpoch, last: Finding) -> Finding | None:
    """The last word at the run's end on a reported slowdown of the run's epochs: a step whose
    old level came back among its later epochs, mixed with its new one, is no step (info,
    `evidence.not_lasting`); an episode that ended is a warning only when what it cost, the
    time it added, is a material share of the run's (`evidence.ended_cost`), else info:
    critical says the run goes at half its pace, which it no longer does."""
    if last.kind != KIND or last.target == FIT_TARGET or severity_rank(last.severity) <= severity_rank(INFO):
        return None
    if "unit" in last.evidence:  # judged on intervals: its verdict too, on the interval view
        return _ended_cost(last, *_interval_cost(view, last)) if view.unit == "interval" else None
    points = _episode(view, last)
    if points is None:
        return None
    since, every = points
    ev = last.evidence
    before, after = ev.get("before"), ev.get("after")
    if ev.get("shape") == "step" and isinstance(before, float | int) and isinstance(after, float | int):
        mixed = _mixed_levels(since, float(before), float(after))
        if mixed is not None:
            fast, slow = mixed["levels"]
            n_fast, n_slow = mixed["epochs"]
            # Short: a console line keeps this last clause whole (console.short_title).
            title = (
                f"{last.title}; not a lasting step: since then {n_fast} epochs at {fmt_seconds(fast)}, "
                f"{n_slow} at {fmt_seconds(slow)}"
            )
            return replace(
                last, severity=INFO, title=title, evidence={**ev, "not_lasting": mixed}, hint=_MIXED_HINT
            )
    base = ev.get("base")
    if last.ended_epoch is None or not isinstance(base, float | int):
        return None
    # The episode's epochs: from its onset to the first of those back at the level before it.
    added = sum(v - base for v in since[: max(0, last.ended_epoch - _onset(last))])
    return _ended_cost(last, added, sum(every))


def _interval_cost(view: RunAtEpoch, last: Finding) -> tuple[float, float]:
    """An episode judged on intervals (step times): the seconds its steps added over the
    level before it (each interval's median over that level, times its steps), and all the
    intervals' steps' seconds. tensorflow's eager tape loop on a loaded host stalled for two
    epochs of ten (11x) and stayed critical after "recovered at the run's end"."""
    onset, base, ended = _onset(last), last.evidence.get("base"), last.evidence.get("ended_point")
    added = total = 0.0
    if not isinstance(base, float | int) or not isinstance(ended, int) or last.target is None:
        return added, total
    for i in range(view.series.offset, view.end):
        v, steps = view.series.value("step_median", i), view.series.value("steps", i)
        if v == v and steps == steps:
            total += v * steps
            if i < ended and view.epoch_number(i) >= onset:
                added += (v - base) * steps
    return added, total


def _ended_cost(last: Finding, added: float, total: float) -> Finding | None:
    """An ended episode as it should stand: a warning where what it added is a material
    share of the run's time, else info; never critical."""
    if last.ended_epoch is None or "ended_cost" in last.evidence or total <= 0:
        return None
    share = added / total
    severity = WARNING if share >= ENDED_COST_SHARE else INFO
    if severity_rank(severity) >= severity_rank(last.severity):
        return None
    said = "time in epochs" if last.target is None else "step time"
    # "; recovered at epoch N after adding ...": the last clause, which a console line keeps.
    title = (
        f"{last.title} after adding {fmt_seconds(max(0.0, added))} ({100 * share:.0f}% of the run's {said})"
    )
    cost = {"added_seconds": added, "share_of_run": share}
    return replace(last, severity=severity, title=title, evidence={**last.evidence, "ended_cost": cost})


DETECTOR = Detector(
    name=KIND,
    detect=detect,
    persistence=PERSISTENCE,
    current=current,
    intervals=True,
    fits=True,
    verdict=verdict,
)
