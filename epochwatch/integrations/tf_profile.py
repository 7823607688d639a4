"""The TF profiler's capture of a slow compiled step, for explain (issue 25, item 3).

When stack sampling finds that most of an epoch's added time is inside the compiled step,
Python frames cannot say which ops: TF's own profiler can. The Explainer
(epochwatch/explain/controller.py) starts a capture at one epoch's end and stops it at the
next (or at its time limit), into `<EPOCHWATCH_DIR>/<run_id>.profile/`, which TensorBoard's
profile plugin opens (`tensorboard --logdir <that dir>`). Here, because only integrations/
imports TensorFlow; set on the Explainer by the hook once the script imported TF.
"""

from __future__ import annotations

import contextlib
import threading


class TFProfiler:
    """start/stop of `tf.profiler.experimental`, never raising; one capture at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = False

    def start(self, logdir: str) -> bool:
        import tensorflow as tf

        with self._lock:
            if self._running:
                return False
            try:
                tf.profiler.experimental.start(logdir)
            except Exception:  # another profiler session (the script's own) is running
                return False
            self._running = True
            return True

    def stop(self) -> None:
        import tensorflow as tf

        with self._lock:
            if not self._running:
                return
            self._running = False
            with contextlib.suppress(Exception):  # never into training
                tf.profiler.experimental.stop()
