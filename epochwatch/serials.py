"""Which model object a record is about: a small serial the hook gives each model it meets.

A fit's `fit_start.model.serial` and a restore's `model_serial` use the same numbering, so
the analysis can tell whether a fit trains the object a restore loaded (the model
`load_model` returned, or the one whose weights were loaded) or some other model built
after it (issue 23: a loop that loads a model, discards it and fits a new one).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

_numbers = itertools.count()
_lock = threading.Lock()


def serial_of(model: Any) -> int | None:
    """The model's serial, given on first sight (None when the object takes no attribute)."""
    serial = getattr(model, "_epochwatch_serial", None)
    if isinstance(serial, int) and not isinstance(serial, bool):
        return serial
    with _lock:
        serial = next(_numbers)
    try:
        model._epochwatch_serial = serial
    except Exception:
        return None
    return serial
