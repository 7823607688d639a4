"""Where a finding the daemon made goes besides the run's trace: the daemon's log, and the
hook's connection (the hook says it on the training process' stderr, where the user looks).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from epochwatch.trace.protocol import OP_FINDING

if TYPE_CHECKING:
    from epochwatch.daemon.peer import Peer

log = logging.getLogger("epochwatch.daemon")
Record = dict[str, Any]

# A finding sent back to its hook must fit the protocol's line limit with room to spare.
MAX_FINDING_CHARS = 256 * 1024


def tell_hook(conn: Peer | None, rec: Record, run_id: str) -> None:
    """Send the finding back to the hook, which prints it where the user looks (its stderr)."""
    if conn is None:
        return
    msg: Record = {"op": OP_FINDING, "record": rec}
    if len(str(rec)) > MAX_FINDING_CHARS:  # huge evidence: the line without it
        msg["record"] = {k: v for k, v in rec.items() if k != "evidence"}
    try:
        conn.send(msg)
    except Exception as exc:  # a slow or gone hook costs it the line, never the daemon
        log.debug("run %s: finding not sent to the hook: %s", run_id, exc)


def log_finding(run_id: str, rec: Record, *, update: bool) -> None:
    """One log line: a warning for a new finding, an info line for an episode's update."""
    if update:  # the same finding again, grown or ended: one quieter line
        log.info(
            "run %s: update %s of %s (%s): %s",
            run_id,
            rec.get("update"),
            rec.get("kind"),
            rec.get("severity", "info"),
            rec.get("title"),
        )
        return
    log.warning(
        "run %s: %s finding %s: %s",
        run_id,
        rec.get("severity", "info"),
        rec.get("kind"),
        rec.get("title"),
    )
