"""Whether TensorFlow runs its functions eagerly: `tf.config.run_functions_eagerly(True)`,
the debugging setting that makes every tf.function (Keras's own train step included) run
op by op. Read only where the script imported TensorFlow (never imported here); a
module-level flag, so a read costs a function call: done once per fit, never per step."""

from __future__ import annotations

import sys


def functions_run_eagerly() -> bool | None:
    """`tf.config.functions_run_eagerly()`, or None without TensorFlow (or on any error)."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    try:
        return bool(tf.config.functions_run_eagerly())
    except Exception:
        return None


def loop_facts() -> dict[str, bool]:
    """What a custom loop's automatic `fit_start` records of it (recorder/auto_epochs.py)."""
    flag = functions_run_eagerly()
    return {} if flag is None else {"functions_run_eagerly": flag}
