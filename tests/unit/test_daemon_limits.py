"""Per-uid rates: bytes count, not only messages (issue 18, item 6)."""

from __future__ import annotations

import dataclasses

import pytest

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


def test_buffered_bytes_are_bounded_per_uid_and_overall() -> None:
    from epochwatch.daemon import limits as lim

    limits = UidLimits(Limits())
    assert limits.hold(1000, lim.MAX_BUFFERED_PER_UID) is None
    assert "per-uid limit" in (limits.hold(1000, 1) or "")
    limits.hold(1000, -lim.MAX_BUFFERED_PER_UID - 1)  # the dropped connection gives them back
    assert limits.buffered == {} and limits.total_buffered == 0
    uids = range(lim.MAX_BUFFERED // lim.MAX_BUFFERED_PER_UID)
    assert all(limits.hold(uid, lim.MAX_BUFFERED_PER_UID) is None for uid in uids)
    assert "its limit" in (limits.hold(9999, 1) or "")  # overall, though uid 9999 holds 1 byte


def test_log_lines_about_a_uid_are_rate_limited_and_the_dropped_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from epochwatch.daemon.lograte import UidLog

    logger = logging.getLogger("test.lograte")
    log = UidLog(logger, burst=3, rate=1000.0)
    log.rate = 1e-9  # no refill while the test runs
    with caplog.at_level(logging.WARNING, logger="test.lograte"):
        for n in range(10):
            log.warning(1000, "line %d", n)
            log.warning(0, "root %d", n)  # root is not limited
        log.warning(1001, "another user")  # not held back by uid 1000
        log.rate = 1e9  # refilled
        log.warning(1000, "after")
    lines = [r.getMessage() for r in caplog.records]
    assert [m for m in lines if m.startswith("line")] == ["line 0", "line 1", "line 2"]
    assert sum(m.startswith("root") for m in lines) == 10 and "another user" in lines
    assert lines[-1].startswith("after (7 earlier lines about uid 1000")
