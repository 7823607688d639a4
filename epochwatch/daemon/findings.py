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


# A finding's severity as a log level: the journal's priority says what the finding says.
LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


def log_finding(run_id: str, rec: Record, *, news: bool) -> None:
    """One log line at the finding's own severity; an episode's update that is not news
    (it grew, or ended) at debug: the trace and the report have it."""
    severity = str(rec.get("severity", "info"))
    level = LEVELS.get(severity, logging.INFO) if news else logging.DEBUG
    kind, title, update = rec.get("kind"), rec.get("title"), rec.get("update")
    if update:
        log.log(level, "run %s: update %s of %s (%s): %s", run_id, update, kind, severity, title)
    else:
        log.log(level, "run %s: %s finding %s: %s", run_id, severity, kind, title)
