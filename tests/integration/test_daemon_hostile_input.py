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
