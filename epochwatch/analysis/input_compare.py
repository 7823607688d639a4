"""After a restore (or in `epochwatch compare`): did the input pipeline make the run slower?

`input_difference` compares two runs' input waits (`input_wait_seconds` per step, from
their steady epochs) and their input settings (`fit_start.input.settings`: kind, workers,
map parallelism, prefetch, cache). The restore check that finds a resumed run slower than
its parent (`restore_slowdown`) adds the result to its evidence and, when the wait grew by
at least EXPLAINS of the extra time per step or the settings differ, names the input
pipeline in its title and hint.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median
from typing import Any

Record = dict[str, Any]

# The extra wait per step must be at least this share of the extra time per step.
EXPLAINS = 0.5


def _per_step(epochs: Sequence[Record]) -> tuple[float, float] | None:
    """Median (wait, training time) per step over the epochs that measured their wait."""
    waits, times = [], []
    for e in epochs:
        wait, seconds, steps = e.get("input_wait_seconds"), e.get("seconds"), e.get("steps")
        if not isinstance(wait, int | float) or not isinstance(seconds, int | float):
            continue
        if not isinstance(steps, int) or steps <= 0:
            continue
        val = e.get("val_seconds")
        train = float(seconds) - (float(val) if isinstance(val, int | float) else 0.0)
        waits.append(float(wait) / steps)
        times.append(train / steps)
    if not waits:
        return None
    return median(waits), median(times)


def input_settings(fit: Record | None) -> dict[str, Any]:
    """A fit_start's input settings (`input.settings`: kind, workers, stages, ...), or {}."""
    block = fit.get("input") if isinstance(fit, dict) else None
    settings = block.get("settings") if isinstance(block, dict) else None
    return dict(settings) if isinstance(settings, dict) else {}


def input_difference(
    parent_fit: Record | None,
    parent_epochs: Sequence[Record],
    child_fit: Record | None,
    child_epochs: Sequence[Record],
) -> dict[str, Any] | None:
    """Evidence about the input of two runs, with `explains` (bool) and `summary` (words);
    None when neither waits nor settings are known for both."""
    out: dict[str, Any] = {}
    p, c = _per_step(parent_epochs), _per_step(child_epochs)
    explains = False
    words = []
    if p is not None and c is not None:
        out["wait_ms_per_step"] = {"parent": 1000 * p[0], "child": 1000 * c[0]}
        out["step_ms"] = {"parent": 1000 * p[1], "child": 1000 * c[1]}
        out["wait_share"] = {
            "parent": p[0] / p[1] if p[1] > 0 else None,
            "child": c[0] / c[1] if c[1] > 0 else None,
        }
        extra = c[1] - p[1]
        if extra > 0 and c[0] - p[0] >= EXPLAINS * extra:
            explains = True
            words.append(
                f"the steps wait {1000 * c[0]:.1f} ms per batch for input against {1000 * p[0]:.1f} ms "
                f"in the parent ({100 * (c[0] - p[0]) / extra:.0f}% of the extra time)"
            )
    ps, cs = input_settings(parent_fit), input_settings(child_fit)
    if ps and cs:
        changed = {
            key: {"parent": ps.get(key), "child": cs.get(key)}
            for key in sorted(set(ps) | set(cs))
            if ps.get(key) != cs.get(key)
        }
        if changed:
            out["settings_changed"] = changed
            explains = explains or p is None or c is None or c[0] > p[0]
            words.append(
                "the input pipeline differs: "
                + ", ".join(f"{k} {v['parent']!r} -> {v['child']!r}" for k, v in changed.items())
            )
    if not out:
        return None
    out["explains"] = explains
    out["summary"] = "; ".join(words)
    return out


INPUT_HINT = (
    "The input pipeline is what changed: restore the parent's input settings (PyDataset workers and "
    "use_multiprocessing, tf.data num_parallel_calls, prefetch, cache), check that the data is read "
    "from the same (local, warm) storage, and see input_bound for the fixes by input kind."
)
