"""Loops of fits on real Keras (issue 23): each fit its own series, the loop judged per
iteration, one finding per problem, and the same findings online and offline.

Each script trains fresh small models in a loop the way k-fold, sweep and retraining
scripts do (no `hook.epoch`: plain top-level fits); every test also asserts that what the
hook wrote while the run went equals what `report` finds on the same trace.
"""

from __future__ import annotations

import itertools
import statistics
from pathlib import Path
from typing import Any

import pytest

from tests.support import child_env, of_type, read_single_trace, run_python, trace_files
from tests.trust_support import assert_same_findings

LOOP = """
import gc
import numpy as np
import epochwatch.hook
import tensorflow as tf
import keras

x = np.random.rand(256, 16).astype("float32")
y = x.sum(axis=1, keepdims=True)
for i in range({n}):
    {clear}
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, y, epochs={epochs}, batch_size=32, verbose=0)
"""


def _run(tmp_path: Path, code: str) -> tuple[list[dict[str, Any]], Path]:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir(exist_ok=True)
    run_python(code, tmp_path, env=child_env(tmp_path, TMPDIR=str(private_tmp)))
    return read_single_trace(tmp_path), trace_files(tmp_path)[0]


def test_fresh_models_in_a_loop_never_mix_fits_and_agree_online_and_offline(tmp_path: Path) -> None:
    records, path = _run(tmp_path, LOOP.format(n=12, epochs=5, clear=""))
    found = assert_same_findings(path)
    # Each fit says its own CPU time (a busier host is told from a slower run by it).
    ends = of_type(records, "fit_end")
    assert len(ends) == 12 and all(e["cpu_seconds"] > 0 for e in ends), ends
    # No epoch range spans two fits: every epoch-unit growth finding names one fit.
    for (kind, _), f in found.items():
        assert kind not in ("slowdown",), f["title"]
        ev = f["evidence"]
        if ev.get("unit", "epoch") == "epoch" and "epochs" in ev and kind != "models_in_loop":
            first, last = ev["epochs"]
            assert first <= last, f["title"]  # one fit: its epochs count up
            assert isinstance(ev.get("fit"), int), f
    loop = found.get(("models_in_loop", None))
    assert loop is not None, found
    assert loop["evidence"]["clear_session_every_iteration"] is False
    assert ("host_memory_growth", None) not in found  # the same problem: one finding
    assert "per fit" in loop["title"] and "after" in loop["title"]
    # Healthy otherwise: 8 steps an epoch wait for each epoch's new iterator about as long as
    # they compute, a few percent of fits that compiling dominates: at most info, with that.
    assert all(f["severity"] == "info" for (kind, _), f in found.items() if kind != "models_in_loop"), found
    bound = found.get(("input_bound", "input"))
    assert bound is None or "of the fit's" in bound["title"], bound


# Every alias a script calls it by, one per iteration in turn.
CLEAR_EACH_ALIAS = (
    "(keras.backend.clear_session, tf.keras.backend.clear_session,"
    " tf.compat.v1.keras.backend.clear_session)[i % 3]()"
)


def test_a_loop_that_clears_the_session_is_told_what_is_left(tmp_path: Path) -> None:
    """clear_session() counted under each of its aliases (one loop calling each in turn: a
    call not counted leaves a fit short of its count), and the advice moves on."""
    records, path = _run(tmp_path, LOOP.format(n=12, epochs=3, clear=CLEAR_EACH_ALIAS))
    assert [f["clear_session_calls"] for f in of_type(records, "fit_start")] == list(range(1, 13))
    found = assert_same_findings(path)
    loop = found.get(("models_in_loop", None))
    if loop is not None:  # what clear_session() cannot free may still show: never advise it again
        assert loop["evidence"]["clear_session_every_iteration"] is True, loop
        assert "already called" in loop["hint"]
    assert ("host_memory_growth", None) not in found


SLOW_GROWTH = """
import os
import numpy as np
import epochwatch.hook
import keras

x = np.random.rand(256, 16).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
kept = []
os.makedirs("ckpt")
for i in range(24):
    model.compile("adam", "mse")  # a compile+fit loop on one model
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    kept.append(np.ones(int(0.75 * 2**20) // 8))  # what each iteration leaves behind: 0.75 MiB
    model.save_weights(f"ckpt/iter_{i}.weights.h5")  # ... and on disk: a checkpoint per iteration
"""


def test_a_compile_fit_loop_that_grows_slowly_is_said_per_fit(tmp_path: Path) -> None:
    _records, path = _run(tmp_path, SLOW_GROWTH)
    found = assert_same_findings(path)
    growth = found.get(("host_memory_growth", None))
    assert growth is not None, found
    ev = growth["evidence"]
    assert ev["unit"] == "fit" and ev["slope_per_fit"] > 0.3 * 2**20, ev
    assert "per fit" in growth["title"] and "as long again" in growth["title"], growth["title"]
    # +0.75 MiB per fit on a process of hundreds of MiB: worth saying, not a warning.
    assert growth["severity"] == "info", growth
    assert ("models_in_loop", None) not in found  # one model: not a model per iteration
    # The checkpoint directory, judged across the loop (one point per iteration; a fit's
    # own two epochs see no growth): a file per fit, a few KiB each, far from filling the disk.
    (disk,) = (f for (kind, _), f in found.items() if kind == "disk_growth")
    assert disk["target"] == str(tmp_path / "ckpt") and disk["severity"] == "info", disk
    assert "per fit" in disk["title"] and disk["evidence"]["unit"] == "count", disk
    assert disk["evidence"]["fits"][-1] >= 10 and disk["evidence"]["slope_per_fit"] >= 0.9, disk


LARGE_ARRAYS = """
import numpy as np
import epochwatch.hook
import keras

model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8), keras.layers.Dense(1)])
model.compile("sgd", "mse")
for i in range(60):
    x = np.random.rand(200_000, 16).astype("float32")  # fresh 12.8 MB arrays every fit
    y = np.random.rand(200_000, 1).astype("float32")
    model.fit(x, y, epochs=1, batch_size=4096, verbose=0)
    del x, y  # no gc.collect(): freed by reference counts, as the script is written
"""


@pytest.mark.slow
def test_sixty_fits_on_fresh_large_arrays_leave_nothing_behind(tmp_path: Path) -> None:
    records, path = _run(tmp_path, LARGE_ARRAYS)
    found = assert_same_findings(path)
    assert ("host_memory_growth", None) not in found and ("models_in_loop", None) not in found, found
    ends = of_type(records, "fit_end")
    assert len(ends) == 60
    # The hook kept each fit's x and y until a full collection once (6 MiB per fit, 300 MiB
    # over these 50 fits); a plain run grows 0.03-0.3 MiB per fit here: at most 0.5 a fit,
    # by the median of the fits' pairwise slopes. Not end against start: a profiler capture
    # (a load-made slow window found the time in the compiled step) once left RSS 22 MiB
    # higher from that fit on, the allocator's, not a fit's (the clean-clone suite, Dec 6).
    rss = [e["rss_bytes"] / 2**20 for e in ends[9:]]
    per_fit = statistics.median(
        (b - a) / (j - i) for (i, a), (j, b) in itertools.combinations(enumerate(rss), 2)
    )
    assert per_fit < 0.5 and rss[-1] - rss[0] < 50, [round(r) for r in rss]
    assert 0 < ends[-1]["hook_bytes"] < 8 * 2**20  # what the hook holds, bounded
