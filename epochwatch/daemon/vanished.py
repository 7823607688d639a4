"""The run_end the daemon writes for a process that went away without one, and why it
likely died, read from the last samples: the memory limit or the host's memory.
"""

from __future__ import annotations

from typing import Any

from epochwatch.daemon.sampling import compact_sample
from epochwatch.trace import schema

Record = dict[str, Any]

# A run whose hook was away longer than this when its process ended may have gone embedded.
DETACHED_HINT_SECONDS = 5.0
# RSS at or above this share of the memory limit in the last samples: "likely OOM-killed".
NEAR_LIMIT = 0.9


def vanished_record(
    run_id: str,
    *,
    now: float,
    started: float,
    epochs: int,
    last_epoch: int | None,
    last_raw: list[Record],
    oom: str | None,
    away: float,
    daemon_was_down: bool,
) -> Record:
    """run_end for a process that went away without one: last samples, and why, if we can tell."""
    rec: Record = {
        "type": schema.RUN_END,
        "run_id": run_id,
        "t": now,
        "ended": schema.ENDED_VANISHED,
        "epochs": epochs,
        "seconds": round(now - started, 3),
        "detected_by": "daemon",
    }
    if last_epoch is not None:
        rec["last_epoch"] = last_epoch
    last = [compact_sample(s) for s in last_raw]
    if last:
        rec["last_samples"] = last
    hint = oom
    if daemon_was_down:
        hint = (
            "the process ended while the daemon was not running; if its hook fell back to "
            "embedded mode, the rest of the run is in its own $EPOCHWATCH_DIR trace"
        )
    elif hint is None and away > DETACHED_HINT_SECONDS:
        hint = (
            f"the hook had not been connected for {away:.0f} s when the process ended; if it fell "
            "back to embedded mode, the rest of the run is in its own $EPOCHWATCH_DIR trace"
        )
    if hint:
        rec["hint"] = hint
    return rec


def oom_hint(samples: list[Record], run_start: Record | None) -> str | None:
    """Why the process likely died, when the last samples point at memory."""
    if not samples:
        return None
    rss = max((s.get("rss_bytes") or 0) for s in samples)
    last = samples[-1]
    limit = last.get("memory_limit_bytes")
    if not isinstance(limit, (int, float)) and run_start:
        env = run_start.get("env")
        if isinstance(env, dict):
            limit = env.get("memory_limit_bytes")
    total = last.get("sys_total_bytes")
    available = last.get("sys_available_bytes")
    gib = 1 << 30
    if isinstance(limit, (int, float)) and limit > 0 and rss >= NEAR_LIMIT * limit:
        return (
            f"RSS reached {rss / gib:.2f} GiB of its {limit / gib:.2f} GiB memory limit "
            f"({100 * rss / limit:.0f}%) in the last seconds: it was most likely killed by the "
            "OOM killer (check `journalctl -k | grep -i oom`); lower the batch size, fix the "
            "memory growth, or raise the limit"
        )
    if (
        isinstance(total, (int, float))
        and isinstance(available, (int, float))
        and total > 0
        and (available < (1 - NEAR_LIMIT) * total or rss >= NEAR_LIMIT * total)
    ):
        return (
            f"the host was nearly out of memory in the last seconds ({available / gib:.2f} GiB "
            f"of {total / gib:.2f} GiB available, the process at {rss / gib:.2f} GiB): it was "
            "most likely killed by the OOM killer (check `journalctl -k | grep -i oom`)"
        )
    return None
