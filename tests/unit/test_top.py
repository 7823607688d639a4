"""`epochwatch top` without a terminal: folding records, tailing growing traces by offset,
the daemon source (and a daemon that goes away), and the layout at 80x24 and smaller.

In a real terminal (tmux): tests/integration/test_top.py.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest

from bench import synthetic as syn
from epochwatch.cli import main
from epochwatch.top import layout, tail
from epochwatch.top.model import RunState
from epochwatch.top.status_source import DaemonSource
from epochwatch.top.tail import DirSource, TraceTail
from epochwatch.trace.client import DaemonUnavailable
from epochwatch.trace.writer import dumps_line

GIB, MIB = syn.GIB, syn.MIB


def _records(run_id: str = "train-1", n: int = 5, **start: Any) -> list[dict[str, Any]]:
    rng = random.Random(3)

    def make(i: int) -> dict[str, Any]:
        return {
            "seconds": syn.noisy(rng, 2.0, 0.05),
            "metrics": {"loss": 1.0 / (i + 1)},
            "host": syn.host_block(GIB + 10 * MIB * i),
            "retraces": {"new": 5 if i == 0 else (1 if i == 3 else 0)},
            "gpu": {
                "devices": [{"index": 0, "process_memory_bytes": 3 * GIB, "memory_total_bytes": 80 * GIB}]
            },
        }

    recs = syn.trace(n, make, planned=20, run_id=run_id, ended=None)
    recs[0]["env"].update({"pid": 4242, "script": "/home/u/train.py"}, **start)
    return recs


def _append(path: Path, recs: list[dict[str, Any]]) -> None:
    with path.open("ab") as fh:
        for r in recs:
            fh.write(dumps_line(r))


def test_a_run_is_folded_from_its_records() -> None:
    s = RunState("x")
    for rec in _records():
        s.add(rec)
    assert (s.pid, s.epoch, s.epochs, s.planned) == (4242, 4, 5, 20)
    assert len(s.epoch_seconds) == 5 and s.rss == GIB + 40 * MIB
    assert s.gpu == 3 * GIB
    assert s.retraces == 1  # the first epoch's traces are warm-up
    assert s.running and s.state == "running"
    s.add({"type": "finding", "kind": "retrace_storm", "severity": "warning", "title": "t", "target": "f"})
    s.add({"type": "run_end", "ended": "completed"})
    assert s.state == "done" and not s.running and ("retrace_storm", "f") in s.findings


def test_findings_are_counted_per_severity_as_every_view_counts_them() -> None:
    s = RunState("x")
    for rec in _records():
        s.add(rec)
    s.add({"type": "finding", "kind": "slowdown", "severity": "warning", "title": "slower"})
    s.add({"type": "finding", "kind": "disk_growth", "severity": "info", "title": "grows", "target": "/c"})
    s.add({"type": "finding", "kind": "slowdown", "severity": "warning", "title": "slower"})  # a copy
    lines = layout.render([s], 160, 24, source="x", now=syn.T0 + 100)
    row = lines[2].text
    assert "1 warn 1 info" in row and "2 warn" not in row
    narrow = layout.render([s], 80, 24, source="x", now=syn.T0 + 100)[2].text
    assert "1w 1i" in narrow or "1 warn 1 info" in narrow
    s.add(
        {
            "type": "finding_update",
            "kind": "disk_growth",
            "severity": "info",
            "title": "grows",
            "target": "/c",
            "update": 1,
            "ended_epoch": 4,
        }
    )
    text = "\n".join(line.text for line in layout.render([s], 160, 24, source="x", now=syn.T0 + 100))
    assert "1 warn 1 info" in text and "open findings (1)" in text  # recovered: counted, not open


def test_the_daemons_retrace_count_wins_over_a_trace_read_from_near_its_end() -> None:
    s = RunState("x", partial=True)
    for rec in _records():
        s.add(rec)
    assert s.retraces == 1 and layout.render([s], 160, 24, source="x")[2].text.count(" 1+ ") == 1
    s.retraces_said = 57  # the daemon read every epoch
    assert s.retraces == 57


def test_a_trace_is_tailed_by_offset_partial_lines_included(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    recs = _records(n=4)
    _append(path, recs[:3])
    t = TraceTail(path, RunState("r"))
    assert t.poll() == path.stat().st_size and t.state.epochs == 2
    assert t.poll() == 0  # nothing new: nothing read
    line = dumps_line(recs[3])
    with path.open("ab") as fh:
        fh.write(line[:20])  # a line being written
    t.poll()
    assert t.state.epochs == 2 and t.partial == line[:20]
    with path.open("ab") as fh:
        fh.write(line[20:])
    assert t.poll() == len(line) - 20 and t.state.epochs == 3 and t.skipped == 0
    path.write_bytes(dumps_line(recs[0]))  # truncated and rewritten: start over
    t.poll()
    assert t.state.epochs == 0 and t.state.pid == 4242


def test_a_large_new_trace_is_read_from_its_head_and_tail_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tail, "FIRST_TAIL", 4096)
    path = tmp_path / "big.jsonl"
    _append(path, _records(n=200))
    t = TraceTail(path, RunState("big"))
    read = t.poll()
    assert read < 4096 < path.stat().st_size
    assert t.state.pid == 4242 and t.state.planned == 20  # from run_start, the head line
    assert t.state.epoch == 199 and 0 < t.state.epochs < 200 and t.skipped == 0


def test_dir_source_follows_the_newest_traces_and_notices_a_dead_process(tmp_path: Path) -> None:
    src = DirSource(tmp_path / "not-yet")
    assert src.poll() == [] and "does not exist" in (src.error or "")
    src = DirSource(tmp_path, limit=2)
    for k in range(3):
        _append(tmp_path / f"r{k}.jsonl", _records(run_id=f"r{k}", n=2 + k))
        os.utime(tmp_path / f"r{k}.jsonl", (1000 + k, 1000 + k))
    runs = src.poll()
    assert sorted(r.run_id for r in runs) == ["r1", "r2"]
    s = runs[0]
    s.hostname, s.pid, s.started = "here", 2**22 + 17, 1.0  # no such pid
    tail.mark_gone(s, hostname="here")
    assert s.gone and s.state == "gone"
    me = RunState("me", pid=os.getpid(), hostname="here", started=9e12)
    tail.mark_gone(me, hostname="here")
    assert not me.gone


def test_daemon_source_uses_status_and_survives_the_daemon_going_away(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    _append(trace, _records(run_id="d1", n=3))
    replies: list[Any] = [
        [
            {
                "run_id": "d1",
                "pid": 77,
                "attached": True,
                "epochs": 3,
                "epoch": 2,
                "trace": str(trace),
                "findings": [{"kind": "slowdown", "severity": "warning", "title": "slower"}],
            },
            {
                "run_id": "d2",
                "pid": 78,
                "attached": False,
                "epochs": 1,
                "epoch": 0,
                "last_epoch_seconds": 4.0,
                "rss_bytes": 5 * GIB,
                "trace": "/nonexistent/d2.jsonl",
            },
        ],
        [{"run_id": "d1", "pid": 77, "attached": True, "epochs": 3, "epoch": 2, "trace": str(trace)}],
        DaemonUnavailable("no daemon listening on /x.sock (connection refused)"),
    ]

    def ask(_path: str) -> list[dict[str, Any]]:
        r = replies.pop(0)
        if isinstance(r, Exception):
            raise r
        return list(r)

    src = DaemonSource("/x.sock", ask=ask)
    runs = {r.run_id: r for r in src.poll()}
    assert runs["d1"].pid == 77 and runs["d1"].epochs == 3 and len(runs["d1"].epoch_seconds) == 3  # tailed
    assert ("slowdown", None) in runs["d1"].findings
    assert (
        runs["d2"].rss == 5 * GIB
        and list(runs["d2"].epoch_seconds) == [4.0]
        and runs["d2"].state == "detached"
    )
    later = {r.run_id: r for r in src.poll()}  # d2 ended: the daemon no longer lists it
    assert later["d2"].state == "ended" and later["d1"].running
    again = src.poll()
    assert len(again) == 2 and "connection refused" in (src.error or "")
    lines = layout.render(again, 80, 24, source=src.label, error=src.error)
    assert "connection refused" in lines[1].text


def test_workers_of_a_job_show_their_place_and_share_in_the_all_reduce() -> None:
    runs = []
    for k, share in ((0, 0.6), (1, 0.1)):
        s = RunState(f"w{k}")
        recs = _records(run_id=s.run_id, n=3)
        recs[0]["env"]["distributed"] = {"job_id": "tf-1", "worker": f"worker:{k}"}
        for rec in recs:
            if rec["type"] == "epoch":
                rec["collective"] = {"seconds": share * rec["seconds"], "calls": 10}
            s.add(rec)
        runs.append(s)
    assert [(r.worker, round(r.collective_share or 0, 2)) for r in runs] == [
        ("worker:0", 0.6),
        ("worker:1", 0.1),
    ]
    lines = layout.render(runs, 160, 24, source="traces in /tmp/x", now=syn.T0 + 100)
    assert "WORKER" in lines[1].text and "ALLRED" in lines[1].text
    text = "\n".join(line.text for line in lines)
    assert "worker:1" in text and "10%" in text and "60%" in text


def test_the_screen_fits_80x24_and_says_so_when_too_small() -> None:
    runs = []
    for k in range(30):
        s = RunState(f"a-rather-long-run-id-{k:03d}-with-a-suffix")
        for rec in _records(run_id=s.run_id, n=6):
            s.add(rec)
        if k % 3 == 0:
            s.add_finding(
                {"kind": "host_memory_growth", "severity": "critical", "title": "RSS \x1b[2J grows"}
            )
        runs.append(s)
    lines = layout.render(runs, 80, 24, source="traces in /tmp/x", now=syn.T0 + 100)
    assert len(lines) == 24 and all(len(line.text) <= 80 for line in lines)
    text = "\n".join(line.text for line in lines)
    for col in ("RUN", "PID", "EPOCH", "TIME", "TREND", "RSS", "GPU", "RETR", "FINDINGS"):
        assert col in lines[1].text
    assert "4242" in text and "6/20" in text and "3.0 GiB" in text and "1 crit" in text
    assert "more runs" in text and "open findings (10)" in text and "\x1b" not in text
    assert lines[-1].text.startswith("q quit")
    tiny = layout.render(runs, 30, 4, source="x")
    assert len(tiny) == 1 and tiny[0].text.startswith("terminal too small (30x4)") and len(tiny[0].text) < 30
    assert layout.render([], 1, 1, source="x")[0].text == "t"


def test_top_once_prints_a_snapshot_and_a_missing_daemon_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(tmp_path / "r.jsonl", _records(run_id="snap", n=3))
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["top", "--dir", str(tmp_path), "--once"]) == 0
    out = capsys.readouterr().out
    assert "snap" in out and "3/20" in out and "q quit" not in out
    assert main(["top", "--socket", str(tmp_path / "gone.sock")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no daemon socket" in err and "Traceback" not in err
    assert main(["top", "--dir", str(tmp_path), "--interval", "0"]) == 2
