"""How many times a run's tf.functions traced anew: the one count every view shows.

The functions counted are those the retrace detector judges (functions.judged): tf.data's
own, which a `predict` call traces anew for its dataset, are how the input pipeline works,
and a healthy GAN loop of `predict` calls read "2407 new tf.function traces after warm-up"
beside no finding. The report's epoch table still shows every trace.

`after_warmup` leaves out each fit's first epoch (compile and first traces are by design:
the retrace_storm detector leaves it out too); `total` counts every epoch (the daemon's
`epochwatch_retraces_total` counter). A fit starts where the epoch record's (`fit`,
`source`) changes or its epoch number goes back, as the epoch series marks warm-up
(series.py `_is_warm`). A fit's epochs nested in a custom loop's epoch (`loop_epoch`) are
counted in the loop's epoch that holds them, not again. `top`, the daemon's status and
metrics, and the report (run JSON `retraces_after_warmup`, the text and HTML headers)
all fold epoch records through this.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from epochwatch.analysis.functions import KERAS_FIT_FUNCTIONS, judged, judged_new

# New traces an epoch past which a record is not believed.
MAX_NEW = 1_000_000


class RetraceCount:
    def __init__(self) -> None:
        self.total = 0
        self.after_warmup = 0
        self._segment: tuple[Any, Any] | None = None
        self._epoch: int | None = None
        self._before: set[str] = set()  # the functions the fit before traced anew
        self._now: set[str] = set()  # ... and this fit's so far

    def add(self, rec: Mapping[str, Any]) -> None:
        """Fold one `epoch` record in."""
        if "loop_epoch" in rec:
            return
        segment = (rec.get("fit"), rec.get("source"))
        epoch = rec.get("epoch")
        epoch = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None
        first = segment != self._segment or (
            epoch is not None and self._epoch is not None and epoch <= self._epoch
        )
        self._segment, self._epoch = segment, epoch
        if first:
            self._before, self._now = self._now, set()
        retraces = rec.get("retraces")
        new = retraces.get("new") if isinstance(retraces, Mapping) else None
        if not isinstance(new, int | float) or isinstance(new, bool) or not 0 < new <= MAX_NEW:
            return  # a count no process traces in an epoch (1e30 made a 100-bit int no view could encode)
        new = judged_new(retraces, new)  # the user's and Keras' functions, not tf.data's
        self.total += int(new)
        traced = _traced(retraces) if isinstance(retraces, Mapping) else {}
        self._now |= traced.keys()
        if not first:
            self.after_warmup += int(new)
        else:  # a function the fit before traced too, traced anew (trieste#722): no warm-up
            self.after_warmup += sum(n for name, n in traced.items() if name in self._before)


def _traced(retraces: Mapping[str, Any]) -> dict[str, int]:
    """The judged functions a `retraces` block says traced anew, with their new traces,
    Keras' fit functions aside (each compile makes them anew: a fit's warm-up, as the retrace
    detector counts it)."""
    functions = retraces.get("functions")
    if not isinstance(functions, Mapping):
        return {}
    out: dict[str, int] = {}
    for name, block in functions.items():
        n = block.get("new") if isinstance(block, Mapping) else None
        if not isinstance(n, int) or isinstance(n, bool) or not 0 < n <= MAX_NEW:
            continue
        if judged(str(name)) and name not in KERAS_FIT_FUNCTIONS:
            out[str(name)] = n
    return out
