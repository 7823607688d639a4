"""Per-uid limits: connections, runs, message and byte rates, and buffered bytes, so one
user cannot starve others.

The daemon asks before it accepts a connection or a run, and counts every message.
Going over the rate does not drop anything: the daemon stops reading that uid's
connections until its bucket refills, which slows only that uid's senders (whose
hooks queue without blocking training).

Memory is bounded too: the bytes the daemon holds for a uid's connections (lines not
finished yet, lines waiting while the uid is throttled) count against
MAX_BUFFERED_PER_UID and, over all uids, MAX_BUFFERED. 150 connections each holding
an unfinished 1 MB line grew the daemon by 185 MB; now the connection that would go
over is dropped (a hook's connection holds a few kB at most: its records are acked
as they come).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from epochwatch.daemon.config import Limits
from epochwatch.daemon.lograte import Bucket, UidLog

MAX_BUFFERED_PER_UID = 16 << 20
MAX_BUFFERED = 96 << 20


class UidLimits:
    def __init__(self, cfg: Limits) -> None:
        self.cfg = cfg
        self.connections: dict[int, int] = defaultdict(int)
        self.total_connections = 0
        self._buckets: dict[int, Bucket] = {}
        self._byte_buckets: dict[int, Bucket] = {}
        self.buffered: dict[int, int] = defaultdict(int)
        self.total_buffered = 0
        self.log = UidLog(logging.getLogger("epochwatch.daemon"))  # lines about a uid's clients

    def reconfigure(self, cfg: Limits) -> None:
        self.cfg = cfg

    def open_connection(self, uid: int) -> str | None:
        """Count a new connection; returns why it is refused, or None when accepted."""
        if self.total_connections >= self.cfg.max_connections:
            return f"the daemon has {self.total_connections} connections, its limit"
        if self.connections[uid] >= self.cfg.max_connections_per_uid:
            return f"uid {uid} has {self.connections[uid]} connections, the per-uid limit"
        self.connections[uid] += 1
        self.total_connections += 1
        return None

    def close_connection(self, uid: int) -> None:
        self.connections[uid] -= 1
        self.total_connections -= 1
        if self.connections[uid] <= 0:
            del self.connections[uid]

    def hold(self, uid: int, delta: int) -> str | None:
        """Count `delta` more (or, negative, fewer) bytes buffered for a connection of `uid`;
        returns why that is too much (the caller drops the connection and gives them back)."""
        self.buffered[uid] += delta
        self.total_buffered += delta
        if self.buffered[uid] <= 0:
            del self.buffered[uid]
            return None
        if delta <= 0:
            return None
        if self.buffered[uid] > MAX_BUFFERED_PER_UID:
            return f"uid {uid} has {self.buffered[uid]} bytes buffered, over the per-uid limit of {MAX_BUFFERED_PER_UID}"
        if self.total_buffered > MAX_BUFFERED:
            return f"the daemon holds {self.total_buffered} buffered bytes, over its limit of {MAX_BUFFERED}"
        return None

    def run_refused(self, uid: int, runs_of_uid: int, traces_of_uid: int = 0) -> str | None:
        """Why a new run of `uid` is refused: its runs attached, or its trace files kept in
        traces/ (root's are not limited: old traces are the host's to remove)."""
        if runs_of_uid >= self.cfg.max_runs_per_uid:
            return f"uid {uid} has {runs_of_uid} runs attached, the per-uid limit"
        most = self.cfg.max_traces_per_uid
        if most and traces_of_uid >= most and uid != 0:
            return (
                f"uid {uid} has {traces_of_uid} traces in the daemon's traces/, the per-uid limit "
                "(max_traces_per_uid); ask the host's admin to remove old ones"
            )
        return None

    def take(self, uid: int, n: int = 1, nbytes: int = 0) -> float:
        """Spend n messages of `nbytes` bytes; returns 0, or the seconds to pause reading
        when over either rate."""
        cfg = self.cfg
        pause = _spend(self._buckets, uid, n, cfg.messages_per_second_per_uid, cfg.message_burst_per_uid)
        if nbytes:
            pause = max(
                pause,
                _spend(self._byte_buckets, uid, nbytes, cfg.bytes_per_second_per_uid, cfg.byte_burst_per_uid),
            )
        return pause


def _spend(buckets: dict[int, Bucket], uid: int, n: int, rate: float, burst: int) -> float:
    bucket = buckets.get(uid)
    if bucket is None:
        bucket = buckets[uid] = Bucket(float(burst))
    bucket.refill(burst, rate)
    bucket.tokens -= n
    if bucket.tokens >= 0:
        return 0.0
    return -bucket.tokens / rate
