"""input_bound: the training steps spend much of their time waiting for the next batch.

Series: `input_wait_seconds` against the span it was measured on (`input_span_seconds`:
from the epoch's first step to the end of its training, Keras), else against the epoch's
training time (`seconds` less `val_seconds`). The share must be high and stable: at least MIN_SHARE in each of the
last RECENT measured steady epochs (warm-up left out; measured epochs within the last
LOOKBACK, of at least MIN_STEPS steps), and at least WARNING_SHARE in their median. A healthy pipeline still shows a
few percent of wait (the first batch of each epoch, a loaded machine), so the floor is
far above that: a step that waits as long as it computes. The fix follows the input kind
and its settings, recorded at fit_start (`input.settings`).

Severity by consequence (docs/findings.md): the wait projected over the fit's horizon (its
planned epochs, else as long again) against the fit's wall time over the same epochs,
its first (compiling) epoch included. A short fit of a tiny model (a loop of fits, 8 steps
an epoch) waits for a new iterator each epoch as long as it computes, yet loses a few
hundred ms of a fit that compiling dominates: info, said with that consequence. A warning
needs the wait to be a material share of the fit (MATERIAL_SHARE) or MATERIAL_SECONDS.
"""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import CRITICAL, INFO, WARNING, Finding
from epochwatch.analysis.input_compare import input_settings
from epochwatch.analysis.trend import median
from epochwatch.analysis.units import fmt_pct, fmt_seconds
from epochwatch.analysis.view import RunAtEpoch, window_epochs

KIND = "input_bound"
TARGET = "input"
RECENT = 3
LOOKBACK = 10
MIN_SHARE = 0.35
WARNING_SHARE = 0.5
CRITICAL_SHARE = 0.8  # the step waits four times as long as it computes
MIN_WAIT_SECONDS = 0.05  # over the RECENT epochs: below that, nothing worth a finding
# Epochs of fewer steps are left out: their wait is mostly the start of a new iterator
# (Keras makes one per epoch for arrays and finite datasets), not a pipeline too slow.
MIN_STEPS = 8
SMALL_BATCH = 16
MATERIAL_SHARE = 0.25  # of the fit's wall time over its horizon, compiling included
MATERIAL_SECONDS = 60.0  # ... or this much time lost within it, whatever the share


_LABELS = {
    "generator": "the Python generator",
    "PyDataset": "the PyDataset",
    "tf.data": "the tf.data pipeline",
    "arrays": "slicing the arrays",
}
_LABELS_DEFAULT = "the input"


def _source(view: RunAtEpoch) -> str | None:
    for rec in reversed(view.run.epochs):
        source = rec.get("input_wait_source")
        if isinstance(source, str):
            return source
    return None


def _tf_data_fixes(settings: dict[str, Any]) -> list[str]:
    fixes = []
    stages = settings.get("stages")
    if isinstance(stages, list) and "from_generator" in stages:  # tensorflow#56258
        fixes.append(
            "the pipeline's source is a Python generator (Dataset.from_generator): it makes one "
            "element at a time under the GIL, and prefetch or parallel maps after it cannot make it "
            "faster: make it yield whole batches (vectorised numpy), move its work into tf.data ops "
            "(from_tensor_slices over the inputs, then map(fn, num_parallel_calls=tf.data.AUTOTUNE)), "
            "or use a keras.utils.PyDataset with workers; .cache() right after it when its output fits"
        )
    maps = settings.get("map_parallel_calls")
    if isinstance(maps, list) and any(m == 1 for m in maps):
        fixes.append("run the map in parallel: .map(fn, num_parallel_calls=tf.data.AUTOTUNE)")
    if not settings.get("prefetch"):
        fixes.append(
            "end the pipeline with .prefetch(tf.data.AUTOTUNE) so batches are made while the step runs"
        )
    if not settings.get("cache"):
        fixes.append(
            ".cache() after the expensive deterministic steps (before random augmentation and shuffle) "
            "when the result fits in memory or on local disk"
        )
    if maps or not fixes:
        fixes.append(
            "replace tf.numpy_function/tf.py_function in maps with TF ops (Python functions hold the GIL "
            "and run one at a time), and batch before mapping to vectorise per-example work"
        )
    return fixes


def hint_for(settings: dict[str, Any], batch_size: float) -> str:
    """The fix, matched to the input kind and what its settings lack."""
    kind = settings.get("kind")
    if kind == "generator":
        fixes = [
            "the Python generator makes one batch at a time on one thread: vectorise its per-example "
            "work (decode and augment whole batches with numpy or TF ops)",
            "or turn it into a keras.utils.PyDataset with workers=N (use_multiprocessing=True for "
            "CPU-bound Python), or a tf.data pipeline with map(num_parallel_calls=tf.data.AUTOTUNE) "
            "and prefetch(tf.data.AUTOTUNE)",
        ]
    elif kind == "PyDataset":
        workers = settings.get("workers")
        multi = settings.get("use_multiprocessing")
        if not isinstance(workers, int) or (workers <= 1 and not multi):
            fixes = [
                "the PyDataset loads every batch on the training side, one at a time: give it workers "
                "(super().__init__(workers=N, use_multiprocessing=True) for CPU-bound Python, threads "
                "for I/O; N no more than the CPUs the training steps leave free, or the workers take "
                "them from the steps) and max_queue_size of at least 2 x workers",
                "vectorise __getitem__ (whole-batch numpy instead of a loop over examples)",
            ]
        else:
            fixes = [
                f"its {workers} {'process' if multi else 'thread'} workers do not keep up: more workers"
                + (
                    ""
                    if multi
                    else ", use_multiprocessing=True when __getitem__ is CPU-bound Python (threads share the GIL)"
                ),
                "a larger max_queue_size, a vectorised __getitem__, decoded data cached on local disk",
            ]
    elif kind == "tf.data":
        fixes = _tf_data_fixes(settings)
    elif kind == "arrays":
        fixes = [
            "batches are sliced from in-memory arrays: use a larger batch, or feed "
            "tf.data.Dataset.from_tensor_slices(...).batch(B).prefetch(tf.data.AUTOTUNE)"
        ]
    else:
        fixes = [
            "make batches ahead of the step: prefetch (tf.data .prefetch, PyDataset workers, a "
            "DataLoader's num_workers), vectorise per-example work, cache decoded data"
        ]
    if batch_size == batch_size and 0 < batch_size <= SMALL_BATCH:
        fixes.append(f"a batch of {int(batch_size)} makes per-batch overhead dominate: try a larger batch")
    return "; ".join(fixes)


def consequence(view: RunAtEpoch, indexes: list[int], waits: list[float]) -> dict[str, Any]:
    """The wait over the fit's horizon against the fit's wall time over it (see the module
    docstring): `lost_seconds`, `fit_seconds`, `lost_share` and the `horizon` basis."""
    planned = view.planned_epochs
    done = view.end - view.first
    epochs = max(planned or done, done)
    first = view.value("seconds", view.first)
    typical = median([view.value("seconds", i) for i in indexes])
    lost = median(waits) * (epochs - 1)  # the first epoch is warm-up: its wait is not measured
    wall = (first if first == first else typical) + typical * (epochs - 1)
    return {
        "horizon": "plan" if planned else "as long again",
        "horizon_epochs": epochs,
        "lost_seconds": lost,
        "fit_seconds": wall,
        "lost_share": lost / wall if wall > 0 else 0.0,
    }


def _severity(share: float, cost: dict[str, Any]) -> str:
    if cost["lost_share"] < MATERIAL_SHARE and cost["lost_seconds"] < MATERIAL_SECONDS:
        return INFO
    return CRITICAL if share >= CRITICAL_SHARE else WARNING


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.done(KIND, TARGET):
        return []
    measured = []
    for i in view.series.indexes(view.end, LOOKBACK):
        if i < view.first:  # the newest fit's epochs only: another fit fed another input
            continue
        wait, seconds = view.value("input_wait", i), view.value("seconds", i)
        count = view.value("steps", i)
        if wait != wait or seconds != seconds or not count >= MIN_STEPS:
            continue
        span = view.value("input_span", i)  # the steps' own span, where the wait was measured on it
        val = view.value("val_seconds", i)
        train = span if span == span and span > 0 else seconds - (val if val == val else 0.0)
        if train > 0:
            measured.append((i, wait, train))
    recent = measured[-RECENT:]
    if len(recent) < RECENT:
        return []
    shares = [w / t for _, w, t in recent]
    share = median(shares)
    if min(shares) < MIN_SHARE or share < WARNING_SHARE or sum(w for _, w, _ in recent) < MIN_WAIT_SECONDS:
        return []
    indexes = [i for i, _, _ in recent]
    last = indexes[-1]
    steps = [view.value("steps", i) for i in indexes]
    per_batch = [w / s for (_, w, _), s in zip(recent, steps, strict=True) if s == s and s > 0]
    compute = [(t - w) / s for (_, w, t), s in zip(recent, steps, strict=True) if s == s and s > 0]
    settings = input_settings(view.run.fits[-1] if view.run.fits else view.training)
    batch = view.value("batch_size", last)
    evidence: dict[str, Any] = {
        "wait_share": share,
        "wait_shares": shares,
        "epochs": window_epochs(view, indexes),
        "source": _source(view),
        "input": settings,
    }
    if per_batch:
        evidence["wait_ms_per_batch"] = 1000 * median(per_batch)
        evidence["compute_ms_per_step"] = 1000 * median(compute)
    produced = [view.value("input_producer", i) for i in indexes]
    if per_batch and all(p == p for p in produced):
        evidence["producer_ms_per_batch"] = 1000 * median(
            [p / s for p, s in zip(produced, steps, strict=True) if s == s and s > 0]
        )
    rate = view.value("steps_per_second", last)
    if rate == rate:
        evidence["steps_per_second"] = rate
    if batch == batch:
        evidence["batch_size"] = batch
    kind = _LABELS.get(str(settings.get("kind")), _LABELS_DEFAULT)
    title = f"training waits for its input {fmt_pct(share)} of the time"
    if per_batch:
        title += (
            f" ({evidence['wait_ms_per_batch']:.1f} ms per batch waiting vs "
            f"{evidence['compute_ms_per_step']:.1f} ms computing)"
        )
    cost = consequence(view, indexes, [w for _, w, _ in recent])
    evidence.update(cost)
    severity = _severity(share, cost)
    # Info: the wait is real but costs little (a new iterator each short epoch), no blame.
    title += f"; {kind} does not keep up:" if severity != INFO else "; that is"
    end = "by its planned end" if cost["horizon"] == "plan" else "if it runs as long again"
    title += (
        f" about {fmt_seconds(cost['lost_seconds'])} of the fit's {fmt_seconds(cost['fit_seconds'])} "
        f"({fmt_pct(cost['lost_share'])}) {end}"
    )
    return [
        Finding(KIND, severity, title, evidence, hint_for(settings, batch), TARGET, view.epoch_number(last))
    ]


DETECTOR = Detector(name=KIND, detect=detect, persistence=1)
