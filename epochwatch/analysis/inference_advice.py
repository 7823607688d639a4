"""The fixes that fit an inference run (a script that only predicts, issue 24).

Its "epochs" are windows of `predict`/`evaluate` calls (`epoch_source: inference_calls`),
judged by the same detectors as training epochs; but "lower the batch size" or "look at
your training step" means nothing there. For the kinds an inference loop shows (memory
growing per call, calls getting slower), the advice is replaced by the inference one.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from epochwatch.analysis.findings import Finding

PER_CALL = (
    "`model.predict()` builds its input pipeline and step loop anew on every call: for small inputs "
    "in a loop, call the model directly (`model(x, training=False)`, or a tf.function around it) or "
    "put the inputs into one batch and call predict once"
)
HINTS = {
    "host_memory_growth": (
        "an inference loop whose memory grows with every call: keep only what you need of each result "
        "(`np.asarray(...)` copies, not the tensors or the outputs' whole dicts), do not build models or "
        "tf.functions inside the loop, and " + PER_CALL + " (each predict() call also leaves some memory "
        "behind in TF's runtime)"
    ),
    "slowdown": (
        "the calls get slower as the loop goes: something accumulates per call (results kept, models or "
        "tf.functions built in the loop; see host memory); and " + PER_CALL
    ),
}


# One file loaded this many times or more in a run that serves: loaded per request.
LOADS_AGAIN = 3
LOADED_AGAIN_HINT = (
    "the loop loads the same model again and again ({n} loads of {path}): every load builds its "
    "layers and functions anew and traces them again, and TensorFlow keeps part of each load "
    "(tensorflow#40171, #35524: keras.backend.clear_session() and `del` do not give it back); "
    "load it once, before the loop, and call the loaded model there"
)
LOADED_AGAIN_KINDS = ("host_memory_growth", "slowdown", "retrace_storm")


def loaded_again(restores: Iterable[dict[str, Any]]) -> tuple[str, int] | None:
    """(path, loads) of the file the run loaded most, when it loaded it LOADS_AGAIN times or more."""
    counts = Counter(str(r["path"]) for r in restores if isinstance(r.get("path"), str))
    if not counts:
        return None
    path, n = counts.most_common(1)[0]
    return (path, n) if n >= LOADS_AGAIN else None


def is_inference(epochs: list[dict[str, Any]], back: int = 0) -> bool:
    """The newest epoch judged (`back` epochs before the run's newest) is a window of
    inference calls: a script that only predicts, or the calls after its last fit."""
    if not epochs:
        return False
    return epochs[-1 - back if back < len(epochs) else 0].get("epoch_source") == "inference_calls"


def adapt(
    findings: Iterable[Finding],
    epochs: list[dict[str, Any]],
    back: int = 0,
    restores: Iterable[dict[str, Any]] = (),
) -> Iterator[Finding]:
    """The findings, with the inference advice where the epochs judged are inference windows,
    marked `evidence.of_windows`: their numbers count windows (the report's rows "w1".."w8"),
    and "at epoch 8" beside a fit of 5 epochs would name a row that is not there. Where the
    loop loads one model again and again (`restores`), that is the advice."""
    found = list(findings)
    if not found or not is_inference(epochs, back):
        yield from found
        return
    loaded = loaded_again(restores)
    for finding in found:
        hint = HINTS.get(finding.kind) or finding.hint
        if loaded is not None and finding.kind in LOADED_AGAIN_KINDS:
            hint = LOADED_AGAIN_HINT.format(path=loaded[0], n=loaded[1])
        yield dataclasses.replace(finding, hint=hint, evidence={**finding.evidence, "of_windows": True})
