"""A Session on its own: records written in order with seq, replays skipped, daemon
additions (peaks, findings, run_end for a vanished process, the OOM hint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from epochwatch.analysis.guarded import GuardedAnalyzer
from epochwatch.daemon.config import Sampling
from epochwatch.daemon.runsamplers import NvmlHub
from epochwatch.daemon.session import Session
from epochwatch.daemon.store import TraceFile
from epochwatch.trace.reader import iter_records

GIB = 1 << 30


def written(s: Session) -> list[dict[str, Any]]:
    return list(iter_records(s.trace_path))


PEER = {"pid": 1, "uid": 0, "gid": 0}


def test_records_in_order_replays_skipped_and_gaps_noted(session: Session) -> None:
    session.accept(
        0, {"type": "run_start", "run_id": "client-id", "mode": "embedded", "env": {"script": "t.py"}}, PEER
    )
    assert session.accept(0, {"type": "run_start"}, PEER) is None  # a replay
    session.on_sample({"t": 1001.0, "rss_bytes": 5 * GIB, "cpu_pct": 50.0})
    session.accept(
        1, {"type": "epoch", "epoch": 0, "start": 1000.5, "end": 1001.5, "host": {"rss_bytes": 6 * GIB}}, PEER
    )
    session.accept(5, {"type": "epoch", "epoch": 1}, PEER)  # 2..4 dropped by the hook
    records = written(session)
    assert [r["type"] for r in records] == ["run_start", "sample", "epoch", "notice", "epoch"]
    assert "records 2..4 of the hook never arrived" in records[3]["message"]
    assert all(r["run_id"] == "r" for r in records)
    assert records[0]["mode"] == "daemon" and records[0]["daemon"]["peer"] == PEER
    assert records[2]["peaks"] == {"rss_bytes": 6 * GIB, "cpu_pct": 50.0, "samples": 1}
    assert session.next_seq == 6 and session.gaps == 3 and session.state.script == "t.py"
    assert session.summary()["epoch"] == 1


def test_no_sample_before_run_start_nor_after_run_end(session: Session) -> None:
    session.on_sample({"t": 1.0, "rss_bytes": 1})
    session.accept(0, {"type": "run_start"}, PEER)
    session.accept(1, {"type": "run_end", "ended": "completed"}, PEER)
    session.on_sample({"t": 2.0, "rss_bytes": 1})
    session.close()
    assert [r["type"] for r in written(session)] == ["run_start", "run_end"]


def test_findings_are_written_once_per_kind_and_target(session: Session) -> None:
    session.accept(0, {"type": "run_start"}, PEER)
    finding = {"kind": "slowdown", "severity": "warning", "title": "slower", "target": "epoch", "epoch": 3}
    session.write_finding(finding)
    session.write_finding(dict(finding))
    assert session.accept(1, {"type": "finding", **finding}, PEER) is None  # the hook found it too
    records = written(session)
    assert [r["type"] for r in records] == ["run_start", "finding"]
    assert records[1]["source"] == "daemon" and session.next_seq == 2


class _Found:
    def __init__(self, run_start: Any, **options: Any) -> None:
        self.n = 0

    def add(self, rec: dict[str, Any], *, evaluate: bool = True) -> list[dict[str, Any]]:
        if rec["type"] == "epoch" and rec["epoch"] == 2:
            return [
                {"kind": "host_memory_growth", "severity": "warning", "title": "RSS grows", "target": "host"}
            ]
        return []


def test_online_findings_go_to_the_trace_and_the_log(
    session: Session, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import epochwatch.analysis.online as online

    monkeypatch.setattr(online, "OnlineAnalyzer", _Found, raising=False)
    session.analyzer = GuardedAnalyzer(lambda exc: pytest.fail(f"detection failed: {exc!r}"))
    session.accept(0, {"type": "run_start"}, PEER)
    for n in range(4):
        session.accept(n + 1, {"type": "epoch", "epoch": n}, PEER)
    findings = [r for r in written(session) if r["type"] == "finding"]
    assert len(findings) == 1 and findings[0]["kind"] == "host_memory_growth"
    assert "run r: warning finding host_memory_growth: RSS grows" in caplog.text


def test_vanished_run_end_with_last_samples_and_oom_hint(session: Session) -> None:
    session.accept(0, {"type": "run_start", "env": {"memory_limit_bytes": 8 * GIB}}, PEER)
    session.accept(1, {"type": "epoch", "epoch": 0}, PEER)
    for t in range(12):
        session.on_sample(
            {"t": 1000.0 + t, "rss_bytes": (6 + t // 6) * GIB + t * 50_000_000, "sys_total_bytes": 64 * GIB}
        )
    session.write_vanished()
    end = written(session)[-1]
    assert end["type"] == "run_end" and end["ended"] == "vanished" and end["epochs"] == 1
    assert len(end["last_samples"]) == 10 and end["last_epoch"] == 0
    assert "OOM killer" in end["hint"] and "8.00 GiB memory limit" in end["hint"]


def test_no_oom_hint_when_memory_was_fine(session: Session) -> None:
    session.accept(0, {"type": "run_start"}, PEER)
    session.on_sample(
        {"t": 1.0, "rss_bytes": GIB, "sys_total_bytes": 64 * GIB, "sys_available_bytes": 40 * GIB}
    )
    assert session.oom_hint() is None
    session.on_sample({"t": 2.0, "rss_bytes": GIB, "sys_total_bytes": 64 * GIB, "sys_available_bytes": GIB})
    assert "host was nearly out of memory" in (session.oom_hint() or "")


class _Counting:
    fed: ClassVar[list[int]] = []

    def __init__(self, run_start: Any, **options: Any) -> None:
        _Counting.fed = []

    def add(self, rec: dict[str, Any], *, evaluate: bool = True) -> list[dict[str, Any]]:
        if rec["type"] == "epoch":
            _Counting.fed.append(rec["epoch"])
            if rec["epoch"] == 4:  # found again on replay: already in the trace, not rewritten
                return [{"kind": "slowdown", "target": "epoch", "severity": "warning", "title": "t"}]
        return []


def test_a_restarted_daemon_rebuilds_the_run_from_its_trace(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import epochwatch.analysis.online as online
    import epochwatch.daemon.takeback as takeback

    session.accept(0, {"type": "run_start", "env": {"script": "t.py"}}, PEER)
    for n in range(6):
        session.accept(n + 1, {"type": "epoch", "epoch": n, "seconds": 1.0}, PEER)
    session.write_finding({"kind": "slowdown", "target": "epoch", "severity": "warning", "title": "t"})
    session.trace.close()

    monkeypatch.setattr(online, "OnlineAnalyzer", _Counting, raising=False)
    monkeypatch.setattr(takeback, "REPLAY_EPOCHS", 2)
    again = Session(
        session.state,
        TraceFile.reopen(session.trace_path),
        sampling=Sampling(),
        online=True,
        hub=NvmlHub(),
        next_seq=7,
    )
    takeback.take_back(again, takeback.read_tail(again.state, again.trace_path.parent))
    try:
        assert again.epochs == 6 and again.last_epoch == 5 and again.run_start is not None
        assert [f["kind"] for f in again.findings] == ["slowdown"]
        assert _Counting.fed == [4, 5]  # only the newest epochs go through the detectors again
        assert [r["type"] for r in written(again)].count("finding") == 1
    finally:
        again.trace.close()


def test_a_handover_cuts_back_what_the_hook_took_over(session: Session) -> None:
    """Records the daemon wrote from the handover's seq on are cut off the trace (the hook's
    embedded trace has them); earlier ones stay; a notice says where the rest is."""
    session.accept(0, {"type": "run_start"}, PEER)
    for n in range(5):
        session.accept(n + 1, {"type": "epoch", "epoch": n}, PEER)
    session.accept(6, {"type": "save", "path": "/tmp/ckpt"}, PEER)  # cut too; no epoch less
    session.hand_over(4)  # epochs 3 and 4 (seq 4, 5) are the hook's
    records = written(session)
    assert [r.get("epoch") for r in records if r["type"] == "epoch"] == [0, 1, 2]
    assert records[-1]["type"] == "notice" and records[-1]["handover_seq"] == 4
    assert "3 already written here were removed" in records[-1]["message"]
    assert session.epochs == 3 and session.ended is not None


def test_a_refused_epoch_is_counted_once_when_it_is_written(session: Session, tmp_path: Path) -> None:
    """Issue 22: log lines said "after 46 epochs" for a 40-epoch run: epochs refused by a
    byte limit were counted, then counted again when the hook resent them."""
    import dataclasses

    from epochwatch.daemon.config import Limits
    from epochwatch.daemon.quota import DiskBudget, RunMeter, TraceLimit

    budget = DiskBudget(dataclasses.replace(Limits(), min_free_bytes=0), tmp_path)
    session.trace.meter = RunMeter(budget, 0)
    session.accept(0, {"type": "run_start", "env": {"script": "t.py"}}, PEER)
    budget.cfg = dataclasses.replace(budget.cfg, max_trace_bytes_per_run=1)  # full
    for _ in range(3):
        with pytest.raises(TraceLimit):
            session.accept(1, {"type": "epoch", "epoch": 0, "seconds": 1.0}, PEER)
    assert session.epochs == 0
    budget.cfg = dataclasses.replace(budget.cfg, max_trace_bytes_per_run=0)  # room again
    session.accept(1, {"type": "epoch", "epoch": 0, "seconds": 1.0}, PEER)
    assert session.epochs == 1


def test_findings_held_are_small_and_bounded(session: Session) -> None:
    session.accept(0, {"type": "run_start"}, PEER)
    huge = "t" * 300_000
    assert session.accept(1, {"type": "finding", "kind": "k", "title": huge}, PEER) is None  # refused
    kept = session.accept(2, {"type": "finding", "kind": "e", "title": "t", "evidence": {"x": huge}}, PEER)
    assert kept is not None and "evidence" not in kept and kept["evidence_bytes"] > 300_000
    for seq in range(3, 202):
        session.accept(
            seq, {"type": "finding", "kind": f"k{seq}", "title": "t" * 5000, "evidence": "e" * 5000}, PEER
        )
    assert len(session.findings) == 64
    assert all(len(f["title"]) <= 300 and "evidence" not in f for f in session.findings)
    summary = session.summary()
    assert len(summary["findings"]) == 20 and summary["findings_total"] == 64
    assert sum(r["type"] == "finding" for r in written(session)) == 200  # the trace has them all
