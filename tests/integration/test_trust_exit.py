"""A training script's exit code is its own (issue 23).

Scripts that save `.h5`, `.keras` and TF checkpoints in short fits and return at once, many
times, two to four processes side by side (the CPU loaded by the others): the hook must have
finished reading what was saved (the hashing thread reads .h5 files with h5py) before any
library's exit handler runs, so no run ends with h5py's `ObjectID.__dealloc__` errors or a
segfault. `EPOCHWATCH_EXIT_RUNS` sets how many (default 50, the issue's acceptance).

Each run is forked from the suite's TensorFlow zygote (tests/zygote.py): from the script's
first line to the interpreter's finalisation it is the process a user runs (the hook,
h5py and the exit handlers all start in it), without 50 imports of TensorFlow.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests import zygote_client as zygote
from tests.support import child_env

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import epochwatch.hook
    import tensorflow as tf
    import keras

    kind = sys.argv[1]
    x = np.random.rand(64, 8).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    if kind == "weights":
        model.save_weights("x.weights.h5")
    elif kind == "h5":
        model.save("x.h5")
    elif kind == "keras":
        model.save("x.keras")
    else:
        tf.train.Checkpoint(model=model, optimizer=model.optimizer).write("ckpt/x")
    """
)
KINDS = ("weights", "h5", "keras", "tf")
PARALLEL = 3


def test_scripts_that_save_and_exit_at_once_exit_0(tmp_path: Path) -> None:
    runs = int(os.environ.get("EPOCHWATCH_EXIT_RUNS", "50"))
    script = tmp_path / "save_and_exit.py"
    script.write_text(SCRIPT)
    failures: list[str] = []
    for start in range(0, runs, PARALLEL):
        children = []
        for i in range(start, min(runs, start + PARALLEL)):
            cwd = tmp_path / f"run{i}"
            cwd.mkdir()
            kind = KINDS[i % len(KINDS)]
            env = child_env(cwd, TMPDIR=str(cwd))
            children.append((i, kind, zygote.start([str(script), kind], cwd=cwd, env=env)))
        for i, kind, child in children:
            done = child.wait(timeout=300)
            if (
                done.returncode != 0
                or "__dealloc__" in done.stderr
                or "decrement id ref count" in done.stderr
            ):
                failures.append(f"run {i} ({kind}): exit {done.returncode}\n{done.stderr[-1500:]}")
    assert not failures, "\n".join(failures)
