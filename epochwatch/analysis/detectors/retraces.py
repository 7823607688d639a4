"""retrace_storm: a tf.function keeps making new traces after warm-up, per function.

Traces are counts, not a trend: in the first epoch of a fit (and while compile is
settling, see series.py) new traces are expected; after that, each one is news (the first epoch of each fit is the
only warm-up here). A function is in a storm when it traced anew in at least MIN_HITS of
its last RECENT epochs, or MIN_TOTAL times within the last WINDOW. The finding names the
argument whose trace type keeps changing (`causes[].arg` in the trace) and how, which
is what decides the fix. Only the user's and Keras' functions are judged
(analysis/functions.py): tf.data and tf.distribute trace their own every epoch by design.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from epochwatch.analysis import frameworks
from epochwatch.analysis.detectors import models_in_loop
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import CRITICAL, WARNING, Finding
from epochwatch.analysis.functions import KERAS_FIT_FUNCTIONS, judged, saved_model_own
from epochwatch.analysis.run import model_int
from epochwatch.analysis.series import FIRST, EpochSeries, FunctionRetraces, whole
from epochwatch.analysis.units import MIB, fmt_bytes
from epochwatch.analysis.view import RunAtEpoch, window_epochs

KIND = "retrace_storm"
# A JAX cause: the types were compiled before by a function of this name (integrations/jax.py).
JITTED_ANEW = "jitted_anew"
RECENT = 5
MAX_ARGS = 4  # arguments a title names that changed the same way
MIN_HITS = 3
WINDOW = 50
MIN_TOTAL = 5
PERSISTENCE = 2
# Critical when building graphs takes this share of the recent epochs' time.
CRITICAL_BUILD_SHARE = 0.25
# One problem, one finding: host growth and a slowdown over epochs that retrace all along
# (at least MIN_TOTAL new traces and PER_STEP per step in each, beyond first traces), at
# most BYTES_PER_TRACE of RSS per new trace and no more added time than the tracing took,
# are this finding's consequences, not findings of their own (see `explains`; growth that
# comes with fewer traces, one an epoch, is judged by retrace_memory.py).
PER_STEP = 0.1
BYTES_PER_TRACE = 16 * MIB  # what one concrete function (graph, caches) can hold at most
# At the run's end, a storm with no new trace in its newest QUIET_END points (epochs,
# windows of calls) or more is said to have stopped: a server that has seen every input
# length traces no more, and its finding said at the third window should not read as if
# it went on.
QUIET_END = 3


def new_traces(series: EpochSeries, index: int) -> float:
    """The judged functions' new traces in epoch `index`; in a fit's first epoch, those
    beyond each function's first trace (which is by design)."""
    first = series.warm[index - series.offset] == FIRST
    total = 0.0
    for name in series.keyed["fn_new"]:
        n = series.value("fn_new", index, name)
        if judged(name) and n == n and n > 0:
            total += n - 1 if first else n
    return total


def explains(
    view: RunAtEpoch,
    indexes: list[int],
    *,
    rss_slope: float = 0.0,
    added: float = 0.0,
    per_step: bool = False,
) -> bool:
    """Whether retracing explains growth judged on `indexes` of `view` (RSS `rss_slope` per
    point, or time: `added` seconds per point, or per step): the points traced anew all
    along (each epoch; intervals, a step or two each, in all and in the newest half: their
    `retraces` block), at most BYTES_PER_TRACE of RSS per new trace, and no more added time
    than the graph building took. Retraces that stopped while the growth went on do not."""
    s = view.series
    if not indexes or view.unit not in ("epoch", "interval"):
        return False
    epochs = view.unit == "epoch"
    traces = [new_traces(s, i) if epochs else s.value("retrace_new", i) for i in indexes]
    steps = [v if v == v else 0.0 for v in (s.value("steps", i) for i in indexes)]
    build = sum(v for v in (s.value("graph_build", i) for i in indexes) if v == v)
    half = len(indexes) // 2
    chunks = (  # (new traces, steps, the least new traces)
        [(t, n, MIN_TOTAL) for t, n in zip(traces, steps, strict=True)]
        if epochs
        else [(sum(traces), sum(steps), MIN_TOTAL), (sum(traces[half:]), sum(steps[half:]), 1)]
    )
    if not all(t >= max(least, PER_STEP * n) for t, n, least in chunks):  # NaN: not counted
        return False
    n = len(indexes)
    time = added * sum(steps) / n if per_step else added
    return not (rss_slope > BYTES_PER_TRACE * sum(traces) / n or time > build / n)


def _top_cause(info: FunctionRetraces, end: int) -> tuple[str, str, str, str] | None:
    """(arg, change, was, now) of the most frequent cause before `end` that is not a first trace."""
    for (arg, change), _count in info.causes_before(end).most_common():
        if change != "new":
            was, now = info.example(arg, change, end)
            return arg, change, was, now
    return None


def _alike(info: FunctionRetraces, end: int, cause: tuple[str, str, str, str]) -> list[str]:
    """The other arguments that changed as `cause`'s did: three annealed Python floats
    retraced each step, and a fix naming one left the other two (dlperf's Lorenz)."""
    arg, change = cause[0], cause[1]
    named = [a for (a, c), _n in info.causes_before(end).most_common() if c == change and a not in ("*", arg)]
    return named[: MAX_ARGS - 1]


def _args_text(names: list[str]) -> str:
    """'argument `x` changes' or 'arguments `a`, `b` change'."""
    quoted = ", ".join(f"`{n}`" for n in names)
    return f"argument {quoted} changes" if len(names) == 1 else f"arguments {quoted} change"


def _python_type(text: str) -> str:
    word = text.split(" ", 1)[0] if text else ""
    return word if word in ("float", "int", "bool", "str", "tuple", "list", "dict") else ""


# tensorflow#62198's shape under jit_compile=True: an input_signature (or reduce_retracing)
# stops the traces, and XLA still compiles each new shape (epochs 20, 10, 10, 5 s with it).
XLA_SHAPE_HINT = (
    "argument `{arg}` changes shape ({was} -> {now}) and the function is compiled with XLA "
    "(jit_compile=True), which compiles every new shape again even where an input_signature or "
    "reduce_retracing stops the traces: make batches the same shape (padding to a few bucket "
    "lengths with bucket_by_sequence_length, drop_remainder=True), or leave jit_compile off for "
    "inputs whose shape varies"
)


def hint_for(
    cause: tuple[str, str, str, str] | None, fw: str = frameworks.TENSORFLOW, also: Sequence[str] = ()
) -> str:
    """The fix for the top cause; `also`: the other arguments that change the same way."""
    if fw != frameworks.TENSORFLOW:
        arg, change, was, now = cause if cause is not None else ("", "none", "", "")
        topic = change if change in ("none", "shape", "value", "dtype", JITTED_ANEW) else "other"
        return frameworks.hint(
            f"{KIND}:{topic}", fw, hint_for(cause), arg=arg, change=change, was=was, now=now
        )
    if cause is None:
        return (
            "the function is traced anew without a changing argument: it is probably created again "
            "inside the loop (a tf.function, or a model, defined in the loop's body: each new one traces "
            "anew and TF keeps its graphs); define it once, outside"
        )
    arg, change, was, now = cause
    if change == "value":
        kind = _python_type(now) or _python_type(was) or "scalar"
        if also:
            names = ", ".join(f"`{n}`" for n in (arg, *also))
            return (
                f"arguments {names} are Python values that change (`{arg}`: {was} -> {now}); tf.function "
                f"traces a new graph for every distinct Python value, and a fix of one leaves the others: "
                f"pass each as a tensor (tf.constant({arg}, tf.float32), ...) or keep them in tf.Variables and "
                f".assign() new values, or fix the signature with input_signature=[...]"
            )
        return (
            f"argument `{arg}` is a Python {kind} whose value changes ({was} -> {now}); tf.function "
            f"traces a new graph for every distinct Python value: pass it as a tensor "
            f"(tf.constant({arg}, tf.float32)) or keep it in a tf.Variable and .assign() new values, "
            f"or fix the signature with input_signature=[...] / reduce_retracing=True"
        )
    if change == "shape":
        return (
            f"argument `{arg}` changes shape ({was} -> {now}): give the function an input_signature "
            f"with None in the dimension that varies (or reduce_retracing=True), or make batches the "
            f"same shape (drop_remainder=True, padding or bucketing)"
        )
    if change == "dtype":
        return f"argument `{arg}` changes dtype ({was} -> {now}): cast it to one dtype before the call"
    if change == "type":
        return (
            f"argument `{arg}` is sometimes a Python value and sometimes a tensor ({was} -> {now}): "
            f"always pass a tensor"
        )
    if change == "structure":
        return (
            "the function is called with a different nesting or number of arguments: keep the call "
            "signature fixed (same keyword arguments, same nested structure)"
        )
    return f"argument `{arg}` keeps changing ({change}: {was} -> {now}): pass it as a tensor of a fixed signature"


def _evaluate(
    view: RunAtEpoch,
    name: str,
    info: FunctionRetraces,
    recent: list[int],
    window: list[int],
    refits: frozenset[int] = frozenset(),
) -> Finding | None:
    s = view.series
    col = s.column("fn_new", name)
    if col is None:
        return None
    # The newest fit's first epoch, judged because it retraced all along (see _stormy_first).
    stormy = bool(window) and s.warm[window[0] - s.offset] == FIRST and window[0] not in refits
    if len(recent) < MIN_HITS and not stormy:
        return None
    # Most functions (Keras' own six) trace only in the first epoch: nothing in the window
    # means no finding, found with one pass over a slice of the column.
    first = window[0] - s.offset if window else 0
    if not any(c > 0 for c in col[max(0, first) : window[-1] - s.offset + 1] if window):
        return None

    hits = sum(1 for i in recent if _count(s, i, name, refits) > 0)
    counts = [_count(s, i, name, refits) for i in window]
    if stormy and len(counts) > 1 and not any(c > 0 for c in counts[1:]):
        return None  # its traces all came in the first epoch and stopped there: warm-up
    total = sum(c for c in counts if c == c)
    if hits < MIN_HITS and total < MIN_TOTAL:
        return None
    hit_idx = [i for i, c in zip(window, counts, strict=True) if c > 0]
    share = _build_share(s, recent, refits)
    cause = _top_cause(info, view.end)
    evidence: dict[str, Any] = {
        "function": name,
        "current": total,  # the episode's measure: the finding is updated as the storm goes on
        "new_traces_after_warmup": int(total),
        "epochs_with_new_traces": len(hit_idx),
        "epochs": window_epochs(view, window),
        "first_retrace_epoch": view.epoch_number(hit_idx[0]) if hit_idx else None,
        "recent_epochs_with_new_traces": f"{hits} of {len(recent)}",
        "graph_build_share_recent": share,
        "live_concrete_functions": view.latest("live_functions"),
    }
    if cause is not None:
        evidence.update(zip(("argument", "change", "was", "now"), cause, strict=True))
        counted = info.causes_before(view.end).most_common(6)
        evidence["causes"] = {f"{a}:{c}": n for (a, c), n in counted if c != "new"}
    fw = frameworks.framework(view.start)
    # `what: detail; consequence`, which a console line cuts from the detail (console.short_title).
    since = "since its first trace" if stormy else "after warm-up"  # a first epoch judged, or not
    title = f"{frameworks.COMPILED[fw]} `{name}` retraced {int(total)} times {since}"
    if hit_idx and all(i in refits for i in hit_idx):  # trieste#722: a new object's method per round
        evidence["fits_with_new_traces"] = len(hit_idx)
        fit = s.value("fit", view.last)
        if fit == fit:
            evidence["fit"] = int(fit)
        title = (
            f"{frameworks.COMPILED[fw]} `{name}` retraced {int(total)} times after its first fit, "
            f"anew in {len(hit_idx)} fits of the same model"
        )
    also = _alike(info, view.end, cause) if cause is not None else []
    if also:
        evidence["arguments"] = [evidence["argument"], *also]
    if cause is not None and cause[1] == JITTED_ANEW:
        title += ": jitted anew for argument types it compiled before"
    elif cause is not None:
        title += f": {_args_text([cause[0], *also])} {cause[1]}"
    title += _consequence(view, hit_idx, share, evidence)
    if view.final and hit_idx and window[-1] - hit_idx[-1] >= QUIET_END:
        evidence["stopped_growing"] = True
        evidence["last_retrace_epoch"] = view.epoch_number(hit_idx[-1])
        title += f"; no new trace after {view.named(hit_idx[-1])}"
    severity = CRITICAL if share >= CRITICAL_BUILD_SHARE else WARNING
    hint = hint_for(cause, fw, also)
    if info.xla and cause is not None and cause[1] == "shape":
        evidence["xla"] = True
        hint = XLA_SHAPE_HINT.format(arg=cause[0], was=cause[2], now=cause[3])
    replaced = _optimizers_replaced(view)
    if replaced:  # tensorflow#27120: the step and its optimizer made anew each epoch
        evidence["optimizers_replaced"] = replaced
        hint += (
            f"; the optimizer is made anew too ({replaced} times, for the same variables): its state "
            "(its moments and step count, Adam's bias correction) starts again at zero each time, so "
            "make it once, before the loop, with the function"
        )
    return Finding(KIND, severity, title, evidence, hint, name, view.epoch_number(view.last))


def _count(s: EpochSeries, i: int, name: str, refits: frozenset[int] = frozenset()) -> float:
    """`name`'s new traces at point `i`, beyond its first trace in a fit's first epoch. In
    the first epoch of a fit of the same model (`refits`, judged only since trieste#722), all
    of them when the function traced in the fit before too and is not one of Keras' fit
    functions (which compile() makes anew), else none: that fit's warm-up."""
    n = s.value("fn_new", i, name)
    if s.warm[i - s.offset] != FIRST:
        return n
    if i in refits:  # judged only for what is not the fit's own warm-up
        return n if name not in KERAS_FIT_FUNCTIONS and _traced_in_fit_before(s, i, name) else 0.0
    return max(0.0, n - 1)


def _traced_in_fit_before(s: EpochSeries, i: int, name: str) -> bool:
    """Whether `name` traced anew in the epochs of the fit before the one starting at `i`."""
    col = s.column("fn_new", name)
    if col is None or i - 1 < s.offset:
        return False
    lo = max(s.segment_start(i - 1), s.offset)
    return any(c > 0 for c in col[lo - s.offset : i - s.offset])


def _refits(view: RunAtEpoch, lo: int) -> frozenset[int]:
    """The first epochs, from index `lo` on, of Keras fits of the model the fit before
    trained (`fit_start.model.serial`): a loop of fits of one model (one epoch each, trieste#722)
    whose every epoch is a fit's first. A function traced in the fit before and again there
    is created anew between fits, not warming up; a new model each fit is models_in_loop's."""
    s = view.series
    starts = [i for i in s.starts if max(lo, s.offset + 1) <= i < view.end]
    if not starts:
        return frozenset()
    serials: dict[int, int] = {}
    for f in view.run.fits:
        fit, serial = f.get("fit"), model_int(f, "serial")
        keras = f.get("source", "keras") == "keras"
        if keras and isinstance(fit, int) and not isinstance(fit, bool) and serial is not None:
            serials[fit] = serial
    out = set()
    for i in starts:
        fit, before = s.value("fit", i), s.value("fit", i - 1)
        if fit == fit and before == before and fit != before:
            now, then = serials.get(int(fit)), serials.get(int(before))
            if now is not None and now == then:
                out.add(i)
    return frozenset(out)


def _build_share(s: EpochSeries, indexes: list[int], refits: frozenset[int]) -> float:
    """The share of `indexes`' time spent building graphs; a refit's first epoch counts its
    time since the epoch before ended (what traced between the fits is in its record). An
    epoch's record holds the builds since the record before, so one that opened while they
    ran (an automatic epoch opens at the first step, counted inside the step's own trace)
    lasted at least as long as them: never more than the whole."""
    build = wall = 0.0
    for i in indexes:
        b, sec = s.value("graph_build", i), s.value("seconds", i)
        if i in refits:
            gap = s.value("end", i) - s.value("end", i - 1)
            sec = max(sec, gap) if gap == gap and sec == sec else sec
        b = b if b == b else 0.0
        build += b
        wall += max(sec, b) if sec == sec else 0.0
    return build / wall if wall > 0 else 0.0


def _points(view: RunAtEpoch) -> tuple[list[int], list[int], frozenset[int]]:
    """The points judged, the same for every function: (the RECENT newest, the WINDOW newest,
    the fits of the same model among them, see `_refits`), with the newest fit's first epoch
    when it retraced all along (`_stormy_first`)."""
    s = view.series
    window = list(s.indexes(view.end, WINDOW, settling=True))
    refits = _refits(view, window[0] if len(window) == WINDOW else s.offset)
    if refits:
        window = sorted({*window, *refits})[-WINDOW:]
    recent = window[-RECENT:]
    first = _stormy_first(view, window)
    if first is not None:
        recent, window = [first, *recent][-RECENT:], [first, *window]
    return recent, window, refits


def traces_now(view: RunAtEpoch, last: Finding) -> float:
    """The storm's measure now (`evidence.current`): its function's new traces over the
    points judged, as its title counts them (an export's: its functions', see `_exports`)."""
    if last.target is None:
        return float("nan")
    _recent, window, refits = _points(view)
    names = [last.target]
    if last.target == EXPORT_TARGET:
        names = [n for n in last.evidence.get("functions", []) if isinstance(n, str)]
    counts = (_count(view.series, i, n, refits) for n in names for i in window)
    return sum(c for c in counts if c == c)


def _optimizers_replaced(view: RunAtEpoch) -> int:
    """New optimizers for the same variables over the run so far (auto epochs' records, up
    to the view's end: a replay holds the epochs after it too)."""
    return sum(whole(rec.get("optimizers_replaced")) for rec in view.epoch_records())


def _consequence(view: RunAtEpoch, hit_idx: list[int], share: float, evidence: dict[str, Any]) -> str:
    """What the retraces cost, in the evidence and said in the title: the RSS added since the
    epoch before the first retrace and the share of the recent epochs' time spent tracing
    (host growth and a slowdown they explain are no findings of their own, see `explains`)."""
    if not hit_idx:
        return ""
    s = view.series
    base_at = max(s.segment_start(hit_idx[0]), hit_idx[0] - 1, s.offset)
    base, now = s.value("rss", base_at), view.latest("rss")
    since = view.epoch_number(base_at)  # its end; 0-based
    if base_at == hit_idx[0]:
        # The storm began in a fit's first epoch (a run of one long epoch: REINFORCE's
        # episodes, a JAX loop's one pass): its end is the storm's, not its start. Take the
        # RSS where that epoch began: its first interval's (or sample's), else the end of
        # the epoch before.
        first = s.value("rss_first", base_at)
        before = s.value("rss", base_at - 1) if base_at - 1 >= s.offset else math.nan
        start = first if first == first else before
        if start == start and base == base and start < base:
            base, since = start, view.epoch_number(base_at) - 1
    said = []
    if base == base and now == now:
        evidence["rss_before"], evidence["rss_now"] = base, now
        if now - base >= MIB:
            evidence["rss_since_epoch"] = since
            said.append(f"RSS +{fmt_bytes(now - base)}")
    if share >= 0.05:
        said.append(f"{100 * share:.0f}% of the time tracing")
    return f"; {', '.join(said)}" if said else ""


def _stormy_first(view: RunAtEpoch, window: list[int]) -> int | None:
    """The newest fit's first epoch, when it retraced all along (PER_STEP and MIN_TOTAL
    beyond each function's first trace): warm-up does not hide a trace per step, and a run
    of one long epoch (one pass over a large dataset) has no other epoch to judge."""
    s = view.series
    if view.end <= 0:
        return None
    first = max(s.segment_start(view.last), s.offset)
    if s.warm[first - s.offset] != FIRST or (window and window[0] <= first):
        return None
    steps = s.value("steps", first)
    traces = new_traces(s, first)
    return first if traces >= max(MIN_TOTAL, PER_STEP * steps if steps == steps else 0.0) else None


def detect(view: RunAtEpoch) -> list[Finding]:
    found: list[Finding] = []
    if not view.series.functions:
        return found
    recent, window, refits = _points(view)  # once per view, not once per function
    for name, info in view.series.functions.items():
        if view.done(KIND, name) or not judged(name):
            continue
        f = _evaluate(view, name, info, recent, window, refits)
        if f is not None:
            found.append(f)
    found = _exports(view, found, window, refits)
    if any("argument" not in f.evidence for f in found) and models_in_loop.carries_retraces(view):
        # One problem, one finding: a step made anew with each new model of a custom loop
        # (no argument changes) is models_in_loop's, which names the cause.
        found = [f for f in found if "argument" in f.evidence or f.target == EXPORT_TARGET]
    mine = [f for f in found if f.target not in FRAMEWORK_OWN]
    said = any(view.reported(KIND, n) for n in view.series.functions if n not in FRAMEWORK_OWN)
    return mine if mine or said else found


# The target of a SavedModel export's storm: the save API that traces (model.export calls it).
EXPORT_TARGET = "tf.saved_model.save"
EXPORT_HINT = (
    "each tf.saved_model.save (Keras' model.export calls it) traces the model's serving functions "
    "anew ({names}) and writes a whole SavedModel; training does not need it: export once, at the end "
    "of training, or every N epochs (`if (epoch + 1) % N == 0:` in the callback); to keep the "
    "training state meanwhile, save weights or checkpoints (ModelCheckpoint, model.save_weights), "
    "which trace nothing"
)
MAX_EXPORT_NAMES = 6  # an export's functions its title names
SAVED_MODEL = "saved_model"  # save.format of a SavedModel (checkpoints/files.py)


def _exports(
    view: RunAtEpoch, found: list[Finding], window: list[int], refits: frozenset[int]
) -> list[Finding]:
    """One problem, one finding: the storms a SavedModel export makes (tensorflow#23025's
    model.export every epoch: `__call__`, `serving_default`, `signature_wrapper___call__`,
    `_traced_save`, `_traced_restore`, five storms with one RSS figure and a fix about a
    function created in the loop) said as one, the export's. Its functions: the SavedModel
    writer's own (functions.saved_model_own) and any other storm with no argument cause
    whose traces all came in epochs where the writer traced (the model's `__call__`)."""
    s = view.series
    own = [n for n in s.keyed["fn_new"] if saved_model_own(n)]
    exported = [i for i in window if any(s.value("fn_new", i, n) > 0 for n in own)]
    if not exported:
        return found
    at = set(exported)
    grouped = [
        f
        for f in found
        if f.target is not None
        and (
            saved_model_own(f.target)
            or (
                "argument" not in f.evidence
                and all(i in at for i in window if _count(s, i, f.target, refits) > 0)
            )
        )
    ]
    if not grouped:
        return found
    names = sorted({str(f.target) for f in grouped} | set(own), key=lambda n: (saved_model_own(n), n))
    counts = {n: sum(c for c in (_count(s, i, n, refits) for i in window) if c == c) for n in names}
    names = [n for n in names if counts[n] > 0]
    total = sum(counts.values())
    hit_idx = [i for i in window if any(_count(s, i, n, refits) > 0 for n in names)]
    share = _build_share(s, window[-RECENT:], refits)
    saves = [
        r
        for r, pos in zip(view.run.saves, view.run.save_positions, strict=False)
        if pos <= view.end and r.get("format") == SAVED_MODEL
    ]
    seconds = sorted(
        float(r["save_seconds"]) for r in saves if isinstance(r.get("save_seconds"), int | float)
    )
    evidence: dict[str, Any] = {
        "functions": names,
        "traces": {n: int(counts[n]) for n in names},
        "current": total,
        "new_traces_after_warmup": int(total),
        "exports": len(saves),
        "epochs_with_new_traces": len(hit_idx),
        "epochs": window_epochs(view, window),
        "first_retrace_epoch": view.epoch_number(hit_idx[0]) if hit_idx else None,
        "graph_build_share_recent": share,
        "live_concrete_functions": view.latest("live_functions"),
    }
    apis = sorted({str(r.get("api")) for r in saves if r.get("api")})
    if apis:
        evidence["apis"] = apis
    epochs = view.end - s.offset
    if saves:
        # Live, the newest epoch's export is often recorded after its epoch: one short is every epoch.
        often = "every epoch" if len(saves) + 1 >= epochs else f"{len(saves)} times in {epochs} epochs"
        each = f", {seconds[len(seconds) // 2]:.2f} s each" if seconds else ""
        evidence["export_seconds_median"] = seconds[len(seconds) // 2] if seconds else None
        what = f"the model is exported as a SavedModel {often} ({', '.join(apis) or EXPORT_TARGET}, {len(saves)} exports{each})"
    else:
        what = f"a SavedModel is written again and again (its writer's functions traced in {len(hit_idx)} epochs)"
    quoted = ", ".join(f"`{n}`" for n in names[:MAX_EXPORT_NAMES])
    more = f" and {len(names) - MAX_EXPORT_NAMES} more" if len(names) > MAX_EXPORT_NAMES else ""
    title = f"{what}: each export traces its functions again ({quoted}{more}: {int(total)} traces)"
    title += _consequence(view, hit_idx, share, evidence)
    severity = CRITICAL if share >= CRITICAL_BUILD_SHARE else WARNING
    hint = EXPORT_HINT.format(names=", ".join(names[:MAX_EXPORT_NAMES]))
    merged = Finding(KIND, severity, title, evidence, hint, EXPORT_TARGET, view.epoch_number(view.last))
    return [f for f in found if f not in grouped] + [merged]


# Functions Keras traces for itself inside the user's traced step: an optimizer built there
# traces `initialize_variables`. A storm of theirs beside the user's function's is the same
# problem (tensorflow#27120's new Adam each epoch: two critical storms, one cause); alone it
# is the only sign of it, and said.
FRAMEWORK_OWN = frozenset({"initialize_variables"})


DETECTOR = Detector(name=KIND, detect=detect, persistence=PERSISTENCE, current=traces_now)
