"""Under a daemon the views read the session's ledger: `status` (and `top` through it), the
metrics, and the trace that `report` reads afterwards say the same findings, counts and
retraces, whichever side found a finding and however its episode went on."""

from __future__ import annotations

from epochwatch.analysis.files import analyze_file
from epochwatch.analysis.ledger import Ledger
from epochwatch.daemon.session import Session
from epochwatch.report.summary import summarize
from epochwatch.top.model import from_status
from epochwatch.trace.reader import iter_records

PEER = {"pid": 1, "uid": 0, "gid": 0}


def test_status_top_metrics_and_the_report_agree(session: Session) -> None:
    session.accept(0, {"type": "run_start", "t": 1000.0}, PEER)
    seq = 1
    for n in range(6):
        epoch = {
            "type": "epoch",
            "epoch": n,
            "fit": 0,
            "seconds": 1.0,
            "retraces": {"new": 4 if n == 0 else 1},
        }
        session.accept(seq, epoch, PEER)
        seq += 1
    disk = {"kind": "disk_growth", "severity": "info", "title": "grows", "target": "/ckpt", "epoch": 2}
    session.accept(seq, {"type": "finding", **disk}, PEER)  # the hook found this one
    slow = {"kind": "slowdown", "severity": "warning", "title": "slower", "epoch": 3}
    session.write_finding(slow)  # the daemon this one ...
    session.accept(seq + 1, {"type": "finding", **slow}, PEER)  # ... and the hook too: a copy
    session.write_finding({**slow, "type": "finding_update", "severity": "critical", "update": 1})
    session.write_finding({**disk, "type": "finding_update", "update": 1, "ended_epoch": 5})
    session.write_finding({**slow, "type": "finding_update", "severity": "warning", "update": 1})  # stale

    trace = Ledger(r for r in iter_records(session.trace_path) if r["type"] in ("finding", "finding_update"))
    want = {(f.kind, f.target, f.severity) for f in trace.findings()}
    assert want == {("disk_growth", "/ckpt", "info"), ("slowdown", None, "critical")}

    status = session.summary()
    top = from_status(status)
    assert {(f.kind, f.target, f.severity) for f in top.findings.findings()} == want
    assert top.findings.counts() == trace.counts() == {"info": 1, "warning": 0, "critical": 1}
    assert [f.kind for f in top.findings.open()] == ["slowdown"]  # the disk episode ended

    report = summarize(analyze_file(session.trace_path))
    assert {(f["kind"], f["target"], f["severity"]) for f in report["findings"]} == want
    assert report["finding_counts"] == trace.counts()
    assert status["retraces"] == top.retraces == report["retraces_after_warmup"] == 5
    assert session.retraces == 9  # the metrics' counter: every trace, warm-up included
