"""eager_execution: the training step runs eagerly, op by op, where a graph was one setting away.

`compile(run_eagerly=True)` and `tf.config.run_functions_eagerly(True)` are debugging
settings; left on, every step is dispatched op by op from Python instead of running as
one graph (tf.function, or jax.jit on Keras's JAX backend): 14-20x slower steps in the
real scripts (tensorflow#30561, river-dl#109), with nothing that grows for a trend to see.
Read from the `fit_start` of the newest epoch's fit (`run_eagerly`, `functions_run_eagerly`,
`dynamic`), and from a custom loop's automatic `fit_start` (`functions_run_eagerly`): one
finding per run (target None), at the first epoch of the first eager fit.

Not said for Keras's torch backend (eager is its default; its `run_eagerly` only turns
`torch.compile` off), nor for a tf_keras model with `dynamic` layers (they can only run
eagerly), nor for the global TensorFlow flag under Keras's JAX or torch backend (it does not
touch their steps).
"""

from __future__ import annotations

from typing import Any

from epochwatch.analysis.detectors import optimizer_recreated
from epochwatch.analysis.detectors.base import Detector
from epochwatch.analysis.findings import INFO, Finding
from epochwatch.analysis.units import fmt_seconds
from epochwatch.analysis.view import RunAtEpoch

KIND = "eager_execution"
COMPILE = "run_eagerly"
GLOBAL = "tf.config.run_functions_eagerly"
HINTS = {
    COMPILE: (
        "remove run_eagerly=True from compile() (or model.run_eagerly = True), a debugging setting: "
        "the step then runs as a graph ({graph}), typically many times faster"
    ),
    GLOBAL: (
        "remove tf.config.run_functions_eagerly(True), a debugging setting: every tf.function "
        "(Keras's own train step included) then runs as a graph, typically many times faster"
    ),
}


def fit_of(view: RunAtEpoch, index: int) -> dict[str, Any] | None:
    """The `fit_start` of the epoch at `index`: by its fit number, else (a custom loop's
    automatic epochs name none) the newest one written before the epoch ended."""
    fits = view.run.fits
    number = view.series.value("fit", index)
    if number == number:
        return view.fit_start(number)
    end = view.series.value("end", index)
    before = [f for f in fits if isinstance(f.get("t"), int | float) and (end != end or f["t"] <= end)]
    return before[-1] if before else None


def settings(fit: dict[str, Any]) -> list[str]:
    """The eager settings a fit ran under that keep its step from being a graph."""
    backend = fit.get("backend")
    if backend == "torch" or fit.get("dynamic") is True:
        return []
    out = []
    if fit.get("run_eagerly") is True and fit.get("source") != "optimizer":
        out.append(COMPILE)
    if fit.get("functions_run_eagerly") is True and backend in (None, "tensorflow"):
        out.append(GLOBAL)
    return out


def detect(view: RunAtEpoch) -> list[Finding]:
    if view.unit != "epoch" or view.last < 0 or view.done(KIND, None):
        return []
    if view.series.value("calls", view.last) == view.series.value("calls", view.last):
        return []  # a window of inference calls: no training step
    fit = fit_of(view, view.last)
    found = settings(fit) if fit else []
    if not fit or not found:
        return []
    loop = fit.get("source") == "optimizer"
    seen = optimizer_recreated.recent(view)
    if loop and seen and optimizer_recreated.every_update(seen[-1]):
        return []  # one problem, one finding: an optimizer made in the step is why it runs eagerly
    backend = fit.get("backend")
    setting = found[0]
    said = "compile(run_eagerly=True)" if setting == COMPILE else "tf.config.run_functions_eagerly(True)"
    if len(found) == 2:
        said += " and tf.config.run_functions_eagerly(True)"
    evidence: dict[str, Any] = {"settings": found}
    if backend:
        evidence["backend"] = backend
    if isinstance(fit.get("fit"), int) and not loop:
        evidence["fit"] = fit["fit"]
    step = view.value("step_median")
    if step == step and step > 0:
        evidence["step_seconds_median"] = step
    seconds = view.value("seconds")
    if seconds == seconds:
        evidence["epoch_seconds"] = seconds
    where = "the loop's tf.function steps run" if loop else "the training step runs"
    title = f"{where} eagerly ({said}): no graph is built, each step runs op by op from Python"
    if step == step and step > 0:
        title += f" ({fmt_seconds(step)} a step)"
    graph = "jax.jit" if backend == "jax" else "tf.function"
    hint = HINTS[setting].format(graph=graph)
    if loop:  # a custom loop: its own steps are the tf.functions to name, not Keras's
        hint = hint.replace("(Keras's own train step included)", "(the loop's @tf.function steps included)")
    if len(found) == 2:
        hint += "; and " + HINTS[GLOBAL].split(", a debugging setting")[0]
    return [Finding(KIND, INFO, title, evidence, hint, None, view.epoch_number(view.last))]


DETECTOR = Detector(name=KIND, detect=detect, persistence=1)
