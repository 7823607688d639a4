"""Hellos and records that parse but must not pass (issue 18, item 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.daemon_harness import RawClient, running_daemon


@pytest.mark.parametrize("version", ["true", "1.0", '"1"'])
def test_the_hello_wants_the_integer_protocol_version(tmp_path: Path, version: str) -> None:
    with running_daemon(tmp_path) as d:
        client = RawClient(d.socket)
        client.send(
            b'{"op": "hello", "protocol": %s, "role": "run", "run_id": "x", "token": null}\n'
            % version.encode()
        )
        reply = client.recv()
        assert reply is not None and reply["op"] == "error" and reply["code"] == "protocol", reply
        assert client.closed_by_peer()


def test_a_record_nested_deeper_than_can_be_written_is_refused_cleanly(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as d:
        client = RawClient(d.socket)
        assert client.hello("deep")["op"] == "welcome"
        client.record(0, "run_start", schema=1)
        client.wait_ack(0)
        deep = b"[" * 600 + b"]" * 600
        client.send(b'{"op": "rec", "seq": 1, "record": {"type": "epoch", "epoch": 0, "x": %s}}\n' % deep)
        reply = client.recv()
        while reply is not None and reply.get("op") == "ack":
            reply = client.recv()
        assert reply is not None and reply["op"] == "error" and reply["code"] == "too_deep", reply
        assert client.closed_by_peer()
        good = RawClient(d.socket)
        assert good.hello("after")["op"] == "welcome"
        assert d.alive()
        log = d.log()
        assert "internal error" not in log and "Traceback" not in log, log
        assert "nested deeper than 254 levels" in log


@pytest.mark.parametrize("journal", [False, True])
def test_a_newline_in_a_watch_path_cannot_forge_a_daemon_log_line(tmp_path: Path, journal: bool) -> None:
    evil = "/nonexistent/ew\x1b[2J\r\n<2>forged critical line"
    env = {"JOURNAL_STREAM": "8:1234"} if journal else {}
    with running_daemon(tmp_path, env=env) as d:
        client = RawClient(d.socket)
        assert client.hello("evil\n<2>run")["op"] == "welcome"
        client.record(0, "run_start", schema=1, env={"script": evil})
        client.record(1, "watch", path=evil, role="user")
        client.wait_ack(1)
        d.wait_log(r"will watch")
        log = d.log()
    assert "\x1b" not in log and "\r" not in log, log
    lines = log.splitlines()
    assert not any(line.startswith(("<2>", "forged")) for line in lines), log
    assert "\\u000a<2>forged critical line" in log  # said, visibly, on its own line
    if journal:  # every log line carries its own priority (a sampler's notice too: one format)
        logged = [line for line in lines if line.strip()]
        assert all(line[:3] in ("<6>", "<4>", "<3>") for line in logged), log
