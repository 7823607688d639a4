"""`epochwatch status` rendering and its one-line failures."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from epochwatch.cli import main
from epochwatch.cli.status import render_text


def test_text_table() -> None:
    out = io.StringIO()
    runs = [
        {
            "run_id": "train-1",
            "pid": 42,
            "uid": 0,
            "script": "/home/a/train.py",
            "epoch": 7,
            "last_epoch_t": 1000.0,
            "attached": True,
            "findings": [{"kind": "slowdown", "severity": "warning"}],
        },
        {"run_id": "train-2", "pid": 43, "uid": 0, "script": "", "attached": False, "findings": []},
    ]
    render_text(runs, out, now=1030.0)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["RUN", "PID", "USER", "SCRIPT", "EPOCH", "LAST", "EPOCH", "FINDINGS"]
    assert "train-1" in lines[1] and "train.py" in lines[1] and "(30s ago)" in lines[1]
    assert "slowdown(warning)" in lines[1]
    assert "train-2 [detached]" in lines[2] and lines[2].split()[4] == "-"
    empty = io.StringIO()
    render_text([], empty)
    assert empty.getvalue() == "no runs attached\n"


def test_no_daemon_is_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--socket", str(tmp_path / "none.sock")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("epochwatch status: no daemon socket at")
    (tmp_path / "file.sock").write_text("")
    assert main(["status", "--socket", str(tmp_path / "file.sock")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_status_reply_of_many_megabytes_is_read_quickly(tmp_path: Path) -> None:
    """Root's status lists every user's runs: the client reads a big reply whole, without
    joining or scanning it again for every chunk."""
    import socket
    import threading
    import time

    import orjson

    from epochwatch.trace.client import query_status

    path = tmp_path / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    runs = [{"run_id": f"r{i}", "script": "s" * 300, "findings": []} for i in range(60_000)]
    reply = orjson.dumps({"op": "status", "protocol": 1, "runs": runs}) + b"\n"

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(reply)
        conn.close()

    server = threading.Thread(target=serve)
    server.start()
    try:
        t0 = time.monotonic()
        got = query_status(str(path), timeout=10.0)
        took = time.monotonic() - t0
    finally:
        server.join(10)
        listener.close()
    assert len(reply) > 20_000_000 and len(got) == 60_000
    assert took < 3.0, took


def test_a_run_with_more_findings_than_listed_says_how_many_more() -> None:
    out = io.StringIO()
    run = {"run_id": "r", "pid": 1, "uid": 0, "script": "", "attached": True, "findings_total": 64}
    run["findings"] = [{"kind": f"k{i}", "severity": "info"} for i in range(20)]
    render_text([run], out, now=0.0)
    assert "and 44 more" in out.getvalue()
