"""Per-uid rates: bytes count, not only messages (issue 18, item 6)."""

from __future__ import annotations

import dataclasses

from epochwatch.daemon.config import Limits
from epochwatch.daemon.limits import UidLimits


def test_big_messages_are_paced_by_bytes_small_ones_are_not() -> None:
    cfg = dataclasses.replace(
        Limits(),
        messages_per_second_per_uid=1000.0,
        message_burst_per_uid=1000,
        bytes_per_second_per_uid=1_000_000.0,
        byte_burst_per_uid=2_000_000,
    )
    limits = UidLimits(cfg)
    assert all(limits.take(1000, 1, 100) == 0.0 for _ in range(100))  # 10 kB: nothing
    pauses = [limits.take(1001, 1, 1_000_000) for _ in range(5)]  # five 1 MB records
    assert pauses[:2] == [0.0, 0.0]  # the burst
    assert 0.9 < pauses[2] < 1.1 and 2.9 < pauses[4] < 3.1  # then 1 MB/s
    assert limits.take(1000, 1, 100) == 0.0  # another uid is not slowed
