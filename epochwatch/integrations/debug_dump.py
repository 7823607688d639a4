"""TensorFlow Debugger V2's dump, when the script turns it on: its directory watched, its
settings on every `fit_start`.

`tf.debugging.experimental.enable_dump_debug_info(logdir, tensor_debug_mode="FULL_HEALTH",
circular_buffer_size=-1)` is the guide's first line for finding where NaNs come from, and it
stays in after the debugging session: every op of every step is then instrumented and
written to `logdir` (the guide's MNIST MLP: steps 15x slower, +3.8 MiB a dump an epoch), and
nothing said so. The dump root is watched (role `tensorboard`: TensorBoard's debugger plugin
reads it) and each fit's `debug_dump` block lets the disk finding's fix name the call.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from epochwatch.recorder import Recorder

PART = "debugger dump watching"
ROLE = "tensorboard"


def install(recorder: Recorder) -> None:
    import tensorflow as tf
    from tensorflow.python.debug.lib import dumping_callback

    original = dumping_callback.enable_dump_debug_info
    if getattr(original, "__epochwatch__", False):
        return
    state: dict[str, Any] = {}

    @functools.wraps(original)
    def enable_dump_debug_info(dump_root: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(dump_root, *args, **kwargs)

        def seen() -> None:
            if isinstance(dump_root, str | os.PathLike) and os.fspath(dump_root):
                mode = kwargs.get("tensor_debug_mode", args[0] if args else "NO_TENSOR")
                size = kwargs.get("circular_buffer_size", args[1] if len(args) > 1 else 1000)
                state.update(dump_root=os.path.abspath(os.fspath(dump_root)), tensor_debug_mode=str(mode))
                if isinstance(size, int) and not isinstance(size, bool):
                    state["circular_buffer_size"] = size
                recorder.watch(dump_root, ROLE)

        recorder.guard.run(PART, seen, None)
        return result

    enable_dump_debug_info.__epochwatch__ = True  # type: ignore[attr-defined]
    dumping_callback.enable_dump_debug_info = enable_dump_debug_info
    if getattr(tf.debugging.experimental, "enable_dump_debug_info", None) is original:
        tf.debugging.experimental.enable_dump_debug_info = enable_dump_debug_info
    recorder.auto.every_fit_facts["debugger"] = lambda: {"debug_dump": dict(state)} if state else {}
