"""A new iterator over the dataset for each step: `x, y = next(iter(train_ds))` in the loop.

Each new iterator starts its pipeline over: a tf.data `shuffle(n)` refills its buffer of n
elements (mapping each again), a PyTorch `DataLoader` starts its worker processes, and the
loop trains on the first batch of each, so an epoch sees a random part of the data, some
samples twice (GM-NAS#4, continuous-thought-machines#19: "creates an iter object every batch
which significantly slows down training ... 1 epoch doesn't loop over the entire dataset").
Read as data passes, each such iterator was an epoch: 936 one-step "epochs" for 3 epochs of
312 steps, which no detector could judge.

So a pass over the dataset that fed the steps that begins one to SHORT_PASS steps after the
previous one, over a dataset that holds more batches than that (its iterator was dropped
with batches left; where its size is not known, a pass is a pass), is an iterator made for a
step: it cuts no epoch (the loop's epochs are windows of steps, as for a
loop without passes; in the script's own `hook.epoch()` epochs passes cut nothing anyway), and each epoch record says how many were made (`new_iterators`), where
(the script's line that called `iter()`, and the dataset's name where it says `iter(name)`), and, where steps are counted as they begin (a step
function's calls), the time from each new iterator to its step: the pipeline's start-up and
the first batch.
`iterator_per_step` says it (analysis/detectors/iterator_per_step.py).
"""

from __future__ import annotations

import linecache
import os
import re
import sys
from typing import Any

SHORT_PASS = 2  # steps at most from one pass's start to the next one's
_FRAMEWORKS = ("epochwatch", "tensorflow", "keras", "tf_keras", "torch")
_UNKNOWN, _INFINITE = -2, -1  # tf.data's cardinality for these


def batches(dataset: Any) -> int | None:
    """How many batches a pass over `dataset` holds (tf.data's cardinality, a DataLoader's
    or a PyDataset's len), a huge number for an endless one; None where it is not known."""
    try:
        cardinality = getattr(dataset, "cardinality", None)
        n = int(cardinality()) if callable(cardinality) else len(dataset)
    except Exception:  # no len (an IterableDataset), or a graph-mode cardinality
        return None
    if n == _UNKNOWN:
        return None
    return sys.maxsize if n == _INFINITE else n


_ITER_OF = re.compile(r"\biter\(\s*([A-Za-z_][\w.]*)\s*\)")


def script_site() -> tuple[str, str | None] | None:
    """(`file:line function`, the dataset's name where the line says `iter(name)`) of the
    nearest caller that is neither epochwatch nor a framework: the script's line that made
    the iterator. Read once, not per pass."""
    frame = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module.partition(".")[0] not in _FRAMEWORKS:
            code = frame.f_code
            line = linecache.getline(code.co_filename, frame.f_lineno)
            named = _ITER_OF.search(line)
            site = f"{os.path.basename(code.co_filename)}:{frame.f_lineno} {code.co_name}"
            return site, named.group(1) if named else None
        frame = frame.f_back  # type: ignore[assignment]
    return None


class IteratorsPerStep:
    """Which passes are new iterators made for a step, and the epoch's count of them."""

    def __init__(self) -> None:
        self._count = 0  # new iterators since the last epoch record
        self._seconds = 0.0  # from each to the step it fed (timed: steps counted as they begin)
        self._made: float | None = None  # when the newest one was made, until its step
        self.site: tuple[str, str | None] | None = None

    def pass_began(self, steps_since: int, now: float, dataset: Any) -> bool:
        """A pass over `dataset`, which fed the steps, began `steps_since` steps after the
        previous one: True where it is one more iterator made for a step (no epoch cut): its
        dataset holds more batches than the last one used. A one-batch dataset's passes are
        epochs, and so are those of a dataset whose size is not known (`filter`, `unbatch`:
        a loop over one batch of it is no different)."""
        if not 1 <= steps_since <= SHORT_PASS:
            return False
        size = batches(dataset)
        if size is None or size <= steps_since + SHORT_PASS:
            return False
        if self.site is None:
            self.site = script_site()
        self._count += 1
        self._made = now
        return True

    def stepped(self, now: float, timed: bool) -> None:
        """A step began (`timed`) or ended: the newest iterator fed it."""
        if self._made is not None:
            if timed:
                self._seconds += now - self._made
            self._made = None

    def fields(self, timed: bool) -> dict[str, Any]:
        """The epoch record's `new_iterators` block, and a fresh count for the next epoch."""
        if not self._count:
            return {}
        block: dict[str, Any] = {"count": self._count}
        if timed:
            block["seconds_to_step"] = round(self._seconds, 6)
        if self.site:
            block["site"] = self.site[0]
            if self.site[1]:
                block["dataset"] = self.site[1]
        self._count, self._seconds = 0, 0.0
        return {"new_iterators": block}
