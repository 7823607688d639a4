"""The input producer's clock for `tf.data.Dataset.from_generator` outside a Keras fit.

A custom loop over `from_generator` runs the user's generator on tf.data's threads, where a
stack sampler on a Python thread hardly sees it (it gets the GIL between the generator's
calls), so explain could not name a generator that got slower. Each `next()` of the
generator is timed here, with two clock reads in the thread that runs it, into per-epoch
fields of the epoch record (`input_producer_*`, the names a fit's clock uses:
input_wait.py). Inside a Keras fit, Keras' adapter is timed by input_wait.py already: a
generator whose iterator is made during a fit is left alone.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from epochwatch.integrations import input_wait

_FRAMEWORKS = ("keras", "tf_keras", "tensorflow")


class ProducerClock:
    """Seconds and calls of the generators' `next()` since the last epoch record."""

    def __init__(self) -> None:
        self.seconds = 0.0  # written by the producers' threads, without a lock: a sum
        self.calls = 0
        self.producer: tuple[str, str, int] | None = None
        self.made = 0  # the script's from_generator datasets so far (fit_start: a fold's each)

    def timed(self, source: Iterator[Any]) -> Iterator[Any]:
        return input_wait.timed_next(source, self._produced)

    def _produced(self, seconds: float) -> None:
        self.seconds += seconds
        self.calls += 1

    def drain(self) -> dict[str, Any] | None:
        """The epoch's `input_producer_*` fields; None when no generator ran."""
        seconds, calls, self.seconds, self.calls = self.seconds, self.calls, 0.0, 0
        return input_wait.producer_fields(seconds, calls, self.producer) if calls else None


def timed_generator(generator: Callable[..., Any], clock: ProducerClock) -> Callable[..., Any]:
    """`generator`, whose iterators' `next()` are timed into `clock` (not in a Keras fit)."""

    def make(*args: Any) -> Any:
        source = generator(*args)
        if input_wait.active() is not None:
            return source  # inside a fit: its adapter's own clock times its producer
        try:
            clock.producer = input_wait.producer_code(None, source, generator)
            return clock.timed(iter(source))
        except Exception:  # not iterable: tf.data says so, as it would have
            return source

    return make


def install(recorder: Any) -> None:
    from tensorflow.python.data.ops import dataset_ops

    original = dataset_ops.DatasetV2.from_generator
    if getattr(original, "__epochwatch__", False):
        return
    clock = ProducerClock()

    def from_generator(generator: Any, *args: Any, **kwargs: Any) -> Any:
        # The script's own datasets only: Keras makes one per fit for a PyDataset or a
        # generator it is given, which no fix about from_generator would be about.
        if sys._getframe(1).f_globals.get("__name__", "").partition(".")[0] not in _FRAMEWORKS:
            clock.made += 1
        if callable(generator):
            generator = timed_generator(generator, clock)
        dataset = original(generator, *args, **kwargs)
        with contextlib.suppress(Exception):  # TF builds it from flat_map: its stage is named here
            dataset._epochwatch_stage = input_wait.FROM_GENERATOR
        return dataset

    from_generator.__epochwatch__ = True  # type: ignore[attr-defined]
    from_generator.__wrapped__ = original  # type: ignore[attr-defined]
    from_generator.__doc__ = original.__doc__
    dataset_ops.DatasetV2.from_generator = staticmethod(from_generator)
    recorder.add_epoch_fields("input producer", clock.drain)
    recorder.auto.every_fit_facts["tf.data"] = lambda: {"from_generator_datasets": clock.made}
