"""Short stretches of the hook's own work in which the garbage collector does not run.

A collection runs in whichever thread's allocation crosses the threshold, and frees what
the training made: a TensorFlow graph freed on the stack sampler's thread while the
training thread executed a tf.function waited on a lock for good (tf35873's loop, hooked,
1 run in 8: the main thread in TFE_Py_ExecuteCancelable, the sampler in gc_collect_main ->
PyGraph's dealloc). The count goes on while collection is paused, and the first
allocation after `resume` collects, in whichever thread makes it: so a thread that pauses
around its allocations makes none the collector counts between them (explain/stacks.py).
A pause is as long as the work it covers: the whole process's garbage waits meanwhile. A
script that turned collection off keeps it off.
"""

from __future__ import annotations

import gc


def pause() -> bool:
    """Collection off; whether it was on (for `resume`)."""
    was = gc.isenabled()
    if was:
        gc.disable()
    return was


def resume(was: bool) -> None:
    if was:
        gc.enable()
