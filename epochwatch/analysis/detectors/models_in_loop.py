"""models_in_loop: a loop that builds a new model every iteration and never lets the old go.

k-fold loops, sweeps, Keras Tuner-style trials and RL agents that fit per iteration call
`fit` again and again in one process. When each iteration builds a new model, the old
models, their optimizers and their traced graphs stay reachable (Keras' global state,
TF's function caches), and the process grows with every iteration: the classic
"TensorFlow gets slower each iteration". Series: the fits so far (`fit_end` records,
judged as a sequence): the RSS after each fit (its memory floor), whether it fitted a
model object not fitted before (`fit_start.model.serial`), the new traced functions of
its epochs, and the `keras.backend.clear_session()` calls the hook counted, so the
advice says what is left to do when clear_session() is already called.
"""

from __future__ import annotations

import itertools
from typing import Any

from epochwatch.analysis import leaks, trend, waiting
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import INFO, WARNING, Finding
from epochwatch.analysis.run import model_int
from epochwatch.analysis.series import finite_number as _num
from epochwatch.analysis.units import MIB, fmt_bytes, fmt_seconds
from epochwatch.analysis.view import RunAtEpoch

KIND = "models_in_loop"
MIN_FITS = 5  # fits before the sequence is judged (the first is left out as warm-up)
MIN_SLOPE = 0.125 * MIB  # RSS growth per fit below which allocator noise rules
MIN_REL_SLOPE = 0.001  # ... and the floor that matters: 0.1% of the process per fit
ALPHA = 0.01  # one-sided Mann-Kendall over the fits' RSS
SLOWER = 1.25  # the fits' time per epoch, newest against first, said in the title from here
SLOWER_WARNING = 1.5  # ... and a warning from here
NEW_MODEL_SHARE = 0.6  # share of the fits that fitted a model not fitted before
TRACING_WARNING = 0.25  # a custom loop's time spent tracing its steps made anew: a warning from here

_RESET_ONCE = (
    "better, build the model once and reset it between iterations (keep w0 = model.get_weights() and "
    "call model.set_weights(w0), and rebuild the optimizer state); "
)
FIX = (
    "each iteration builds a new model and the old ones (their weights, optimizer and traced graphs) "
    "stay alive. In order of what they buy (Keras 3.15 / TF 2.21: about 8 MiB per iteration left "
    "alone): call keras.backend.clear_session() at the start of each iteration and `del model; "
    "gc.collect()` at its end (still about 3.7 MiB per iteration); "
    + _RESET_ONCE
    + "or run each trial in a subprocess (multiprocessing with the 'spawn' start method, or one process "
    "per trial from the sweep driver), the only way to get it all back"
)
# Trials of models that differ (the TF HParams tutorial's units 16/32: 12,730 and 25,450
# weights) cannot share one model reset between them: the fix leaves that out.
FIX_ARCHITECTURES = FIX.replace(_RESET_ONCE, "")
# What clear_session cannot free is the model's (its compiled functions and TF's caches of
# them: 3.7 MiB per iteration for a small model, 28-32 MiB for tensorflow#30324's 1.9M
# weights in Keras 3.15 / TF 2.21), so the fix quotes what this run measured.
ALREADY_CLEARED = (
    "keras.backend.clear_session() is already called every iteration, and memory still grows "
    "{per_fit} per fit: what it cannot free (TF's runtime and the compiled functions' caches) only a "
    "new process gets back. Run each trial in a subprocess (multiprocessing with the 'spawn' start "
    "method, or one process per trial from the sweep driver); building the model once and resetting "
    "its weights (model.set_weights(w0)) helps only if it is compiled once too: each compile leaves "
    "as much behind"
)

# ... unless each fit also made a new tf.data.Dataset.from_generator: tf.data keeps each
# generator, and what it closes over (the fold's arrays), for the process's life
# (tensorflow#57690: RSS +29 MiB a fold, a fold's 23 MiB copy; flat with from_tensor_slices).
FROM_GENERATOR = (
    "each fit also made a new tf.data.Dataset.from_generator, and tf.data keeps every generator, "
    "with what it closes over (the fold's arrays), for the life of the process "
    "(tensorflow#57690), which clear_session() does not free. Build each fold's dataset with "
    "tf.data.Dataset.from_tensor_slices(...) from the fold's indices, or make the generator once "
    "over data made once and pick the fold's rows by index (a keras.utils.PyDataset does too); "
    "what is left after that ({per_fit} per fit at most) only a subprocess per fold gets back"
)

# ... and a custom loop's (its fits are its optimizers': no compile() to make once): what is
# left is one model, optimizer and step for all iterations (flower700 RS_REUSE=1: RSS flat,
# 3.6 s of CPU against 5.3; clear_session() each client made each round 7x slower).
ALREADY_CLEARED_LOOP = (
    "keras.backend.clear_session() is already called every iteration, and memory still grows "
    "{per_fit} per fit: what it cannot free (TF's runtime and the traced steps' caches) only a new "
    "process gets back, and clearing the session each iteration costs time of its own. Build the "
    "model, its optimizer and the @tf.function step once, before the loop, and load each "
    "iteration's starting weights into them (model.set_weights(w), and the optimizer's variables "
    "assigned zeros: v.assign(tf.zeros_like(v))): nothing new to trace or keep; or run each "
    "iteration in a subprocess (multiprocessing with the 'spawn' start method)"
)


Record = dict[str, Any]


def _models(view: RunAtEpoch, ends: list[Record]) -> tuple[list[Any], list[float]]:
    """Per fit: the model object it fitted (serial, else name), and the clear_session()
    calls counted by then."""
    starts = {f.get("fit"): f for f in view.run.fits}
    models: list[Any] = []
    calls: list[float] = []
    for r in ends:
        start = starts.get(r.get("fit")) or {}
        got = start.get("model")
        model: dict[str, Any] = got if isinstance(got, dict) else {}
        models.append(model.get("serial", model.get("name")))
        c = _num(start.get("clear_session_calls"))
        if c is not None:
            calls.append(c)
    return models, calls


def _ended_fits(view: RunAtEpoch) -> list[Record]:
    run = view.run
    if view.unit == "fit":
        return run.fit_ends[: max(0, view.end - run.fit_ends_dropped)]
    return [r for r, pos in zip(run.fit_ends, run.fit_end_positions, strict=False) if pos < view.end]


def new_models_each_fit(view: RunAtEpoch) -> bool:
    """Whether the run is a loop whose fits train a new model each (most of them): then
    the memory each fit leaves behind is this finding's, not a separate host growth."""
    ends = _ended_fits(view)
    if len(ends) < 2:
        return False
    models, _ = _models(view, ends)
    return len(set(models)) >= NEW_MODEL_SHARE * len(ends)


RECOMPILED = (
    "the loop compiles the same model again before each fit, and each compile() builds a new "
    "optimizer ({names}, ...) and new train and predict functions to trace, while the old ones "
    "stay reachable. Compile once, before the loop; to start each round afresh, keep "
    "w0 = model.get_weights() and call model.set_weights(w0) instead (and reset the optimizer's "
    "variables if its state must not carry over)"
)


def recompiled_each_fit(view: RunAtEpoch) -> list[str]:
    """The optimizers' names when the loop's fits train the same model (few model objects)
    with a new optimizer each (most of them: compile() called every iteration, Keras
    naming each new one `sgd`, `sgd_1`, ...), else []: then what each fit leaves behind
    is the recompiling's, and the fix is to compile once."""
    ends = _ended_fits(view)
    if len(ends) < 2 or new_models_each_fit(view):
        return []  # new models each fit: this finding's own case
    starts = {f.get("fit"): f for f in view.run.fits}
    names = []
    for r in ends:
        optimizer = (starts.get(r.get("fit")) or {}).get("optimizer")
        config = optimizer.get("config") if isinstance(optimizer, dict) else None
        name = config.get("name") if isinstance(config, dict) else None
        if isinstance(name, str):
            names.append(name)
    return names if len(set(names)) >= NEW_MODEL_SHARE * len(ends) else []


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.done(KIND, None):
        return []
    run = view.run
    ends = _ended_fits(view)
    if len(ends) < MIN_FITS:
        return []
    models, calls = _models(view, ends)
    distinct = len(set(models))
    if distinct < NEW_MODEL_SHARE * len(ends):
        return []
    rss = [v for v in (_num(r.get("rss_bytes")) for r in ends[1:]) if v is not None]
    if len(rss) < MIN_FITS - 1:
        return []
    mk = trend.mann_kendall(rss, autocorr=False)
    ts = trend.theil_sen(rss)
    traces = [run.fit_traces.get(r.get("fit"), 0.0) for r in ends[1:]]  # type: ignore[arg-type]
    per_fit = trend.median(traces) if traces else 0.0
    # The floor is relative to the process: 0.1% of its RSS per fit (0.7 MiB on 550 MiB).
    grows = not (ts.slope < MIN_REL_SLOPE * rss[0] or ts.slope < MIN_SLOPE or mk.p_increasing > ALPHA)
    # A custom loop whose every fit traces its step anew: the retrace storm it makes is
    # this finding's (see carries_retraces), said here even where the RSS holds.
    traced = carries_retraces(view) and per_fit >= 1
    if not grows and not traced:
        return []
    fit_view = RunAtEpoch(run.fit_view(), run.fit_ends_dropped + len(ends), unit="fit", parents=view.parents)
    limit, limit_name = leaks.host_limit(fit_view)
    proj = leaks.projection(fit_view, rss[-1], limit, ts.slope) if grows else {}
    cleared = len(calls) >= 2 and calls[-1] - calls[0] >= len(calls) - 2
    seconds = [v for v in (_num(r.get("seconds")) for r in ends[1:]) if v is not None]
    # The loop's slowdown is this finding's too ("gets slower each iteration"): each fit's
    # time per epoch, the median of its first and of its newest three fits.
    per_epoch = [
        s / n
        for s, n in ((_num(r.get("seconds")), _num(r.get("epochs_completed"))) for r in ends[1:])
        if s and n
    ]
    slower = None
    same_work = len(set(fit_view.window("work", size=len(ends)).values)) <= 1  # not a sweep of sizes
    if (
        same_work
        and len(per_epoch) >= 6
        and trend.mann_kendall(per_epoch, autocorr=False).p_increasing <= 0.05
    ):
        slower = (trend.median(per_epoch[:3]), trend.median(per_epoch[-3:]))  # a trend, not a busy minute
    busier = slower is not None and _host_busier(ends[1:], slower)
    evidence: dict[str, Any] = {
        "fits": len(ends),
        "models": distinct,
        "unit": "fit",
        "rss_slope_per_fit": ts.slope,
        "slope_ci95": [ts.low, ts.high],
        "p_value": mk.p_increasing,
        "rss_first": rss[0],
        "rss_now": rss[-1],
        "current": rss[-1],
        "base": rss[0],
        "new_traces_per_fit": per_fit,
        "clear_session_calls": calls[-1] if calls else None,
        "clear_session_every_iteration": cleared,
        "limit_name": limit_name,
        **proj,
    }
    if len(seconds) >= 2:
        evidence["fit_seconds_first"] = seconds[0]
        evidence["fit_seconds_now"] = seconds[-1]
    title = f"a new model every iteration: after {len(ends)} fits of {distinct} models"
    if grows:
        title += f", RSS grows {fmt_bytes(ts.slope)} per fit ({fmt_bytes(rss[0])} -> {fmt_bytes(rss[-1])})"
    if per_fit > 0:
        title += f", {per_fit:.0f} new traced functions per fit"
    share = _tracing_share(view, ends) if traced else 0.0
    if traced:
        evidence["rss_grows"] = grows
        evidence["graph_build_share"] = share
        if share >= 0.05:
            title += f", {100 * share:.0f}% of the time tracing"
    if slower is not None and slower[1] >= SLOWER * slower[0]:
        evidence["epoch_seconds_first"], evidence["epoch_seconds_now"] = slower
        title += f", epochs {slower[1] / slower[0]:.1f}x as slow ({fmt_seconds(slower[0])} -> {fmt_seconds(slower[1])})"
        if busier:
            evidence["host_busier"] = True
            title += " with no more CPU time of its own (the host got busier)"
    tail = leaks.consequence(proj, limit_name, "fit")
    if tail:
        title += f"; {tail}"
    if cleared:
        title += "; clear_session() is already called every iteration"
    epoch = view.epoch_number(view.last) if view.unit != "fit" else fit_view.epoch_number(fit_view.last)
    sizes = {model_int(view.fit_start(r.get("fit")), "params") for r in ends} - {None}
    hint = FIX if len(sizes) <= 1 else FIX_ARCHITECTURES
    if cleared:
        custom = (view.fit_start(ends[-1].get("fit")) or {}).get("source") == "optimizer"
        hint = (ALREADY_CLEARED_LOOP if custom else ALREADY_CLEARED).format(per_fit=fmt_bytes(ts.slope))
    if grows and _generator_each_fit(view, ends):
        evidence["from_generator_each_fit"] = True
        title += "; a new from_generator dataset each fit"
        hint = FROM_GENERATOR.format(per_fit=fmt_bytes(ts.slope))
    severity = leaks.severity(proj, rss[0]) if grows else INFO
    if share >= TRACING_WARNING and severity == INFO:
        severity = WARNING  # a quarter of the loop's time is spent tracing steps made anew
    if slower is not None and not busier and slower[1] >= SLOWER_WARNING * slower[0] and severity == INFO:
        severity = WARNING  # a third of each fit's time is now lost: a material share of the loop
    return [Finding(KIND, severity, title, evidence, hint, None, epoch, hold=1)]


def _generator_each_fit(view: RunAtEpoch, ends: list[Record]) -> bool:
    """Whether each of the fits judged began after a new from_generator dataset was made
    (fit_start's `from_generator_datasets`, counted in the process, rose fit to fit)."""
    made = [_num((view.fit_start(r.get("fit")) or {}).get("from_generator_datasets")) for r in ends]
    known = [m for m in made if m is not None]
    return len(known) == len(made) >= 2 and all(b > a for a, b in itertools.pairwise(known))


def carries_retraces(view: RunAtEpoch) -> bool:
    """Whether a custom loop's fits (its optimizers', `source: "optimizer"`) train a new
    model each: then the traces of its step made anew for each model (no argument changes,
    one function's first trace per fit) are this finding's, not a `retrace_storm` beside it
    (flower700: a model, SGD and @tf.function per client said twice, +47 MiB in both)."""
    ends = _ended_fits(view)
    if len(ends) < 2 or not new_models_each_fit(view):
        return False
    return all((view.fit_start(r.get("fit")) or {}).get("source") == "optimizer" for r in ends[-2:])


def _tracing_share(view: RunAtEpoch, ends: list[Record]) -> float:
    """The share of the epochs' time since the first fit ended spent building graphs."""
    s = view.series
    first = next(
        (p for r, p in zip(view.run.fit_ends, view.run.fit_end_positions, strict=False) if r is ends[0]), None
    )
    lo = max(s.offset, first if first is not None else s.offset)
    build = wall = 0.0
    for i in range(lo, view.end):
        b, sec = s.value("graph_build", i), s.value("seconds", i)
        build += b if b == b else 0.0
        wall += sec if sec == sec else 0.0
    return build / wall if wall > 0 else 0.0


def _host_busier(ends: list[Record], slower: tuple[float, float]) -> bool:
    """Whether the fits' added time per epoch is not their own CPU work (`fit_end.cpu_seconds`,
    newest three fits against the first three, grew by under half of it): a busier host, not
    the loop, made the epochs slower (keras#13710's shape on a loaded machine)."""
    cpu = [
        c / n
        for c, n in ((_num(r.get("cpu_seconds")), _num(r.get("epochs_completed"))) for r in ends)
        if c and n
    ]
    if len(cpu) < 6:
        return False
    return not waiting.own_work_explains((trend.median(cpu[:3]), trend.median(cpu[-3:])), slower)


def current(view: RunAtEpoch, finding: Finding | None) -> float:
    """The RSS the newest fit left behind: an episode, updated (graver severity) while the
    loop goes on, so a loop found early is not left at the severity of its first fits."""
    ends = _ended_fits(view)
    rss = _num(ends[-1].get("rss_bytes")) if ends else None
    return rss if rss is not None else float("nan")


DETECTOR = Detector(name=KIND, detect=detect, persistence=1, current=current)
