"""Log lines that a user's clients cause, rate-limited per uid, with a count of what was dropped.

Every problem a client causes is worth one log line, but 20,000 one-line connections in
5 s wrote 20,000 WARNING lines: the journal (and whoever reads it) paid for a user's
loop. So lines about a uid's clients go through `UidLog`: a token bucket per uid (a
burst of LOG_BURST lines, then LOG_PER_SECOND), and the next line that passes says how
many were dropped since the last one. Other users' lines are never held back by it, and
root's are not limited.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

LOG_BURST = 20
LOG_PER_SECOND = 0.5
MAX_UIDS = 4096  # buckets kept; beyond, the oldest (in insertion order) are forgotten


@dataclass
class Bucket:
    """A token bucket (limits.py's rates use it too); `dropped`: lines not said meanwhile."""

    tokens: float
    stamp: float = field(default_factory=time.monotonic)
    dropped: int = 0

    def refill(self, burst: float, rate: float) -> None:
        """Add what `rate` tokens a second gave since the last refill, up to `burst`."""
        now = time.monotonic()
        self.tokens = min(burst, self.tokens + (now - self.stamp) * rate)
        self.stamp = now


class UidLog:
    """`warning(uid, msg, *args)`: log it unless the uid's lines are over their rate."""

    def __init__(self, logger: logging.Logger, burst: int = LOG_BURST, rate: float = LOG_PER_SECOND) -> None:
        self.logger = logger
        self.burst = burst
        self.rate = rate
        self._budgets: dict[int, Bucket] = {}

    def warning(self, uid: int, msg: str, *args: object) -> None:
        self.log(logging.WARNING, uid, msg, *args)

    def log(self, level: int, uid: int, msg: str, *args: object, exc_info: bool = False) -> None:
        if uid == 0:  # root's clients are trusted with the log as with everything else
            self.logger.log(level, msg, *args, exc_info=exc_info)
            return
        budget = self._budget(uid)
        if budget.tokens < 1.0:
            budget.dropped += 1
            return
        budget.tokens -= 1.0
        if budget.dropped:
            msg += " (%d earlier lines about uid %d's clients were dropped: over %g lines a second)"
            args = (*args, budget.dropped, uid, self.rate)
            budget.dropped = 0
        self.logger.log(level, msg, *args, exc_info=exc_info)

    def _budget(self, uid: int) -> Bucket:
        """The uid's bucket, refilled to now."""
        budget = self._budgets.get(uid)
        if budget is None:
            if len(self._budgets) >= MAX_UIDS:
                del self._budgets[next(iter(self._budgets))]
            budget = self._budgets[uid] = Bucket(float(self.burst))
        budget.refill(self.burst, self.rate)
        return budget

    def report_dropped(self) -> None:
        """One line per uid whose dropped lines were not said yet, once its rate allows
        (the server's 1 Hz tick), so a flood that stopped is still counted in the log."""
        for uid in [u for u, b in self._budgets.items() if b.dropped]:
            budget = self._budget(uid)
            if budget.tokens >= 1.0:
                budget.tokens -= 1.0
                self.logger.warning(
                    "uid %d's clients: %d log lines about them were dropped (over %g lines a second)",
                    uid,
                    budget.dropped,
                    self.rate,
                )
                budget.dropped = 0
