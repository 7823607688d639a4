"""The log directories of `tf.summary.create_file_writer`, watched (role `tensorboard`).

A custom loop that writes its own summaries (alf#91's scalars, images and histograms every
few steps) grew its log directory by 4.5 MiB an epoch, 72 MiB in all, said nowhere: only
a Keras TensorBoard callback's `log_dir` was watched. Wrapped: `tf.summary.create_file_writer`,
called where a writer is made (once, or once a run), never per step; only a log directory
given as a Python string or path. A Keras TensorBoard callback's own writers
(`log_dir/train`, `log_dir/validation`) add nothing: its `log_dir` is watched from the fit.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from epochwatch.integrations.saving import calling

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "summary writer watching"
_TENSORBOARD = ("TensorBoard",)  # Keras' callback, whose own writers are not the script's
ROLE = "tensorboard"


def _wrap(original: Callable[..., Any], recorder: Recorder) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        logdir = args[0] if args else kwargs.get("logdir")
        if isinstance(logdir, str | os.PathLike) and os.fspath(logdir) and calling(_TENSORBOARD, 8) is None:
            recorder.guard.run(PART, lambda: recorder.watch(logdir, ROLE), None)
        return original(*args, **kwargs)

    wrapper.__epochwatch__ = True  # type: ignore[attr-defined]
    return wrapper


def install(recorder: Recorder) -> None:
    import tensorflow as tf
    from tensorflow.python.ops import summary_ops_v2

    original = summary_ops_v2.create_file_writer_v2
    if getattr(original, "__epochwatch__", False):
        return
    wrapped = _wrap(original, recorder)
    summary_ops_v2.create_file_writer_v2 = wrapped
    if getattr(tf.summary, "create_file_writer", None) is original:
        tf.summary.create_file_writer = wrapped
