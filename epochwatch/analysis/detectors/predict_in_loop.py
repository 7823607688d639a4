"""predict_in_loop: a loop spends most of its time in Keras's `predict` per few samples.

`model.predict()` (and `evaluate`, `predict_on_batch`) is a top-level API: each call builds
its input handling and runs a step loop, a constant cost of tens of milliseconds
(tensorflow#40261: "a 300x difference in the constant overheads" against calling the
model). An online-learning or RL loop that predicts one sample per step spends nearly all
its time there (99.6% in the real script: 63 ms a predict against 1 ms a model call), and
nothing grows, so no trend sees it. A scoring loop that predicts per batch of a dataset
(tensorflow#56674: 250 calls of 64 rows, 23.4 s against 0.65 s for one `predict(dataset)`)
is the same cost outside training. Read from the custom loop's epochs' `loop_inference`, or
an inference window's `inference.loops` (recorder/inference_calls.py: the calls, their
seconds and rows): in the newest RECENT
epochs together, MANY_CALLS calls or more of FEW_ROWS rows or fewer each (where the rows
could be read), taking SHARE of the epochs' time or more, and at least SHARE of the newest
epoch's. One finding per run (target None), live and in `report` alike. A validation
predict once an epoch on a big batch is no such loop (a call or two an epoch, many rows).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import WARNING, Finding
from epochwatch.analysis.inference_advice import PER_CALL
from epochwatch.analysis.series import amount
from epochwatch.analysis.units import fmt_seconds
from epochwatch.analysis.view import RunAtEpoch

KIND = "predict_in_loop"
RECENT = 3  # epochs judged together (a loop's short epochs of a few calls each)
MANY_CALLS = 20  # calls in the epochs judged, at least
FEW_ROWS = 64  # rows a call, at most (where the calls' rows were read)
SHARE = 0.5  # of the epochs' time spent in the calls, at least
HINTS = {
    "predict": PER_CALL + "; `model.predict_on_batch(x)` also skips the input pipeline",
    "predict_on_batch": (
        "`model.predict_on_batch()` still runs Keras's predict function and converts its output to "
        "NumPy on every call: for small inputs in a loop, call the model directly "
        "(`model(x, training=False)`, or a tf.function around it), or put the inputs into one batch"
    ),
    "evaluate": (
        "`model.evaluate()` builds its input pipeline, step loop and metrics anew on every call: for "
        "small inputs in a loop, compute the loss on the model's output directly "
        "(`loss_fn(y, model(x, training=False))`, or a tf.function around it), or gather the inputs "
        "and evaluate once on the batch"
    ),
}


def _calls(rec: dict[str, Any]) -> dict[str, Any]:
    """The record's Keras inference-loop calls: a custom loop's epoch's, or an inference
    window's (a scoring loop that calls predict per batch)."""
    block = rec.get("loop_inference")
    if not isinstance(block, dict):
        window = rec.get("inference")
        block = window.get("loops") if isinstance(window, dict) else None
    return block if isinstance(block, dict) else {}


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.unit != "epoch" or view.last < 0 or view.done(KIND, None):
        return []
    recs = [r for r in view.epoch_records()[-RECENT:] if r.get("source") in ("auto", "loop")]
    if not recs or not _calls(recs[-1]):
        return []
    newest = _calls(recs[-1])
    newest_seconds = amount(recs[-1].get("seconds"))
    if newest_seconds <= 0 or amount(newest.get("seconds")) < SHARE * newest_seconds:
        return []
    found = _finding(view, recs)
    if found is None or found.evidence["calls"] < MANY_CALLS or found.evidence["share"] < SHARE:
        return []
    rows = found.evidence.get("rows_per_call")
    if rows is not None and rows > FEW_ROWS:
        return []  # big batches: the time is the model's work, not the calls' overhead
    return [found]


def verdict(view: RunAtEpoch, last: Finding) -> Finding | None:
    """At the run's end, the calls of the whole run: it is said once, when the first epochs
    hold it, and a loop that goes on calls on (keras.io's character LSTM read "called 50
    times ... of window 1" after 300 calls in 6 windows, 62% of its run)."""
    if last.kind != KIND:
        return None
    every = view.epoch_records()
    recs = [r for r in every if r.get("source") in ("auto", "loop") and _calls(r)]
    found = _finding(view, recs) if recs else None
    if found is None or found.evidence["calls"] <= amount(last.evidence.get("calls")):
        return None
    evidence = {**found.evidence, **{k: v for k, v in last.evidence.items() if k == "of_windows"}}
    title = found.title
    run_seconds = sum(amount(r.get("seconds")) for r in every)
    if run_seconds > 1.05 * evidence["epoch_seconds"]:  # fits beside the loop's windows
        evidence["run_share"] = round(evidence["seconds"] / run_seconds, 4)
        title += f"; {evidence['run_share']:.0%} of the run's {fmt_seconds(run_seconds)}"
    return replace(found, title=title, evidence=evidence, hint=last.hint, epoch=last.epoch)


def _finding(view: RunAtEpoch, recs: list[dict[str, Any]]) -> Finding | None:
    """What the calls of `recs` (epoch records, oldest first) cost, said as the finding."""
    blocks = [_calls(r) for r in recs]
    calls = int(sum(amount(b.get("calls")) for b in blocks))
    seconds = sum(amount(b.get("seconds")) for b in blocks)
    epoch_seconds = sum(amount(r.get("seconds")) for r in recs)
    if calls <= 0 or epoch_seconds <= 0:
        return None
    sized = [b for b in blocks if b and "rows" in b]
    rows = sum(amount(b.get("rows")) for b in sized) / max(1.0, sum(amount(b.get("calls")) for b in sized))
    apis: dict[str, int] = {}
    for b in blocks:
        for api, n in (b.get("apis") or {}).items():
            apis[api] = apis.get(api, 0) + int(amount(n))
    api = max(apis, key=lambda a: apis[a]) if apis else "predict"
    share = seconds / epoch_seconds
    per_call = seconds / calls
    numbers = [_number(r) for r in recs]
    first, last = numbers[0], numbers[-1]
    evidence: dict[str, Any] = {
        "calls": calls,
        "apis": apis,
        "seconds": round(seconds, 6),
        "epoch_seconds": round(epoch_seconds, 6),
        "share": round(share, 4),
        "seconds_per_call": round(per_call, 6),
        "epochs": [first, last],
    }
    if sized:
        evidence["rows_per_call"] = round(rows, 2)
    windows = all(r.get("epoch_source") == "inference_calls" for r in recs)
    unit = "window" if windows else "epoch"
    if len(recs) == 1:
        span = f"{unit} {last + 1}"
    elif numbers == list(range(first, first + len(numbers))):
        span = f"{unit}s {first + 1}-{last + 1}"
    else:  # windows numbered anew in each round of calls between fits: no one range
        span = f"{len(recs)} {unit}s"
        del evidence["epochs"]
    size = f"{rows:.0f} row{'' if round(rows) == 1 else 's'} a call, " if sized else ""
    title = (
        f"`model.{api}()` called {calls:,} times {'in a loop' if windows else 'inside the training loop'} "
        f"({size}{fmt_seconds(per_call)} each): {fmt_seconds(seconds)} ({share:.0%}) of the "
        f"{fmt_seconds(epoch_seconds)} of {span}"
    )
    hint = HINTS.get(api, HINTS["predict"])
    if windows and api == "predict":
        hint += "; a loop over a dataset's batches: `model.predict(dataset)` once, Keras iterates them itself"
    return Finding(KIND, WARNING, title, evidence, hint, None, view.epoch_number(view.last))


def _number(rec: dict[str, Any]) -> int:
    """The record's epoch (or window) number as the trace gave it (-1: none)."""
    n = rec.get("epoch")
    return n if isinstance(n, int) and not isinstance(n, bool) else -1


DETECTOR = Detector(name=KIND, detect=detect, persistence=1, verdict=verdict)
