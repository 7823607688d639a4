"""optimizer_recreated: a custom loop makes its optimizer anew at (nearly) every update.

tensorflow#42183's shape: `Adam()` built inside the training step, and the error a
`tf.function` raises for it ("tried to create variables on non-first call") worked around
with `tf.config.run_functions_eagerly(True)`. Every update then starts an optimizer from
zero (its moments, its step count, Adam's bias correction): the training follows no
optimizer's schedule (the script's loss ended 0.13 where one Adam reaches 0.001), its steps
run eagerly, and each optimizer's slots add to the RSS. The automatic epochs count new
optimizers whose first update named the same variables as the one before
(`epoch.optimizers_replaced`); where they are at least EVERY_UPDATE of the updates in each
of the RECENT epochs, that is this finding, the memory they hold included (host_memory.py
asks `holds`). A new optimizer once an epoch with a step made anew is retrace_storm's
(its fix says so).
"""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import WARNING, Finding
from epochwatch.analysis.series import whole
from epochwatch.analysis.view import RunAtEpoch

KIND = "optimizer_recreated"
TARGET = "optimizer"
RECENT = 3
EVERY_UPDATE = 0.5  # new optimizers per update, at least, in each recent epoch
HINT = (
    "create the optimizer once, before the loop, and build it outside the tf.function (call "
    "`optimizer.build(model.trainable_variables)` once, or let its first apply_gradients run in "
    "the first call): a tf.function may make variables on its first call only, which is the error "
    "`run_functions_eagerly(True)` hides; then remove `tf.config.run_functions_eagerly(True)`, so the "
    "step runs as a graph again"
)


def recent(view: RunAtEpoch) -> list[dict[str, Any]]:
    """The RECENT newest epoch records the view sees."""
    return view.epoch_records()[-RECENT:]


def every_update(rec: dict[str, Any]) -> bool:
    """Whether an epoch record made a new optimizer for nearly every update."""
    return whole(rec.get("optimizers_replaced")) >= max(1.0, EVERY_UPDATE * whole(rec.get("steps")))


def holds(view: RunAtEpoch) -> bool:
    """Whether each of the RECENT newest epochs made a new optimizer for nearly every update
    (then the RSS the optimizers made anew hold is this finding's too: host_memory asks)."""
    recs = recent(view)
    return len(recs) == RECENT and all(every_update(r) for r in recs)


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.unit != "epoch" or view.done(KIND, TARGET) or not holds(view):
        return []
    recs = recent(view)
    made = sum(whole(r.get("optimizers_replaced")) for r in recs)
    updates = sum(whole(r.get("steps")) for r in recs)
    first, last = view.epoch_number(view.end - RECENT), view.epoch_number(view.last)
    evidence = {
        "optimizers_replaced": made,
        "updates": updates,
        "epochs": [first, last],
    }
    title = (
        f"a new optimizer at nearly every update: {made} made for the same variables over "
        f"{updates} updates in epochs {first + 1}-{last + 1}; each starts its state (moments, step "
        "count) from zero"
    )
    return [Finding(KIND, WARNING, title, evidence, HINT, TARGET, last)]


DETECTOR = Detector(name=KIND, detect=detect)
