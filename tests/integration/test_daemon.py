"""The daemon as a real process on a real socket, driven by fake training processes (the
real SocketSink, no TensorFlow) and by raw clients that misbehave on purpose."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.daemon_harness import (
    PY,
    DaemonProc,
    RawClient,
    base_env,
    running_daemon,
    start_fake_run,
    wait_for_line,
    wait_until,
)


def _finish(proc: subprocess.Popen[str], timeout: float = 30.0) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"child did not finish: {err}") from None
    return proc.returncode, out, err


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _status_as(uid: int, path: Path) -> list[dict]:
    """`status` from a forked child that dropped to `uid` (the daemon filters by SO_PEERCRED)."""
    from epochwatch.cli.status import query

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            os.setgid(uid)
            os.setuid(uid)
            os.write(w, json.dumps(query(str(path))).encode())
        except BaseException as exc:
            os.write(w, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def _types(records: list[dict]) -> list[str]:
    return [r["type"] for r in records]


def test_fake_run_trace_is_complete_with_samples_and_peaks(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as d:
        proc = start_fake_run(tmp_path, d.socket, epochs=4, period=0.7)
        rc, out, err = _finish(proc)
        assert rc == 0, err
        assert "SINK daemon at" in out
        d.wait_log(r"run fake-run ended: completed after 4 epochs")
        records = d.trace("fake-run")
        assert records[0]["type"] == "run_start" and records[-1]["type"] == "run_end"
        start = records[0]
        assert start["mode"] == "daemon" and start["run_id"] == "fake-run"
        assert start["daemon"]["peer"]["pid"] == proc.pid  # from SO_PEERCRED
        epochs = [r for r in records if r["type"] == "epoch"]
        assert [e["epoch"] for e in epochs] == [0, 1, 2, 3]
        for e in epochs:
            assert e["peaks"]["rss_bytes"] > 1 << 20 and "samples" in e["peaks"]
        assert any(e["peaks"]["samples"] >= 1 for e in epochs)
        samples = [r for r in records if r["type"] == "sample"]
        assert len(samples) >= 2 and all(s["rss_bytes"] > 0 for s in samples)
        assert any("cpu_pct" in s and "contention" in s for s in samples)
        seqs = [r["seq"] for r in records if "seq" in r]
        assert seqs == list(range(len(seqs)))
        assert records[-1]["ended"] == "completed"
        mode = (d.traces / "fake-run.jsonl").stat().st_mode & 0o777
        assert mode == 0o640
        assert not (tmp_path / "embedded").exists()
        assert d.log().count("attached: pid") == 1


def test_status_shows_live_runs_and_a_killed_run_vanishes(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as d:
        proc = start_fake_run(tmp_path, d.socket, epochs=2, period=0.3, end="hang")
        try:
            wait_for_line(proc, "EPOCH 1")
            wait_until(
                lambda: '"epoch":1' in (d.traces / "fake-run.jsonl").read_text(), what="epoch 1 in the trace"
            )
            cmd = [PY, "-m", "epochwatch", "status", "--socket", str(d.socket)]
            js = subprocess.run(
                [*cmd, "--format", "json"], capture_output=True, text=True, env=base_env(), timeout=30
            )
            assert js.returncode == 0, js.stderr
            runs = json.loads(js.stdout)["runs"]
            assert len(runs) == 1
            run = runs[0]
            assert run["pid"] == proc.pid and run["epoch"] == 1 and run["attached"] is True
            assert run["script"] == "fake_run.py" and run["last_epoch_t"] > 0
            text = subprocess.run(cmd, capture_output=True, text=True, env=base_env(), timeout=30)
            assert text.returncode == 0 and "fake-run" in text.stdout and str(proc.pid) in text.stdout

            if os.geteuid() == 0:
                assert _status_as(65534, d.socket) == []  # another user sees none of root's runs

            killed_at = time.monotonic()
            proc.kill()
            d.wait_log(r"run fake-run vanished", timeout=5.0)
            assert time.monotonic() - killed_at < 5.0
            end = d.trace("fake-run")[-1]
            assert end["type"] == "run_end" and end["ended"] == "vanished" and end["epochs"] == 2
            assert end["last_samples"] and end["last_samples"][-1]["rss_bytes"] > 0
        finally:
            _kill(proc)

    gone = subprocess.run(
        [PY, "-m", "epochwatch", "status", "--socket", str(tmp_path / "nothing.sock")],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=30,
    )
    assert gone.returncode == 2 and gone.stdout == ""
    assert gone.stderr.count("\n") == 1 and "no daemon socket" in gone.stderr


CONFIG_QUICK = """
[limits]
hello_timeout_seconds = 1.0
max_runs_per_uid = 400
"""


def test_bad_clients_cost_one_log_line_each_and_the_daemon_serves_others(tmp_path: Path) -> None:
    with running_daemon(tmp_path, config=CONFIG_QUICK) as d:
        garbage = RawClient(d.socket)
        garbage.send(bytes(range(256)) * 4 + b"\n")
        reply = garbage.recv()
        assert reply is not None and reply["op"] == "error" and reply["code"] == "bad_hello"
        assert garbage.closed_by_peer()

        bad_json = RawClient(d.socket)
        assert bad_json.hello("ok-run")["op"] == "welcome"
        bad_json.send(b'{"op": "rec", "seq": 0, "record": {"type": \n')
        bad_json.record(0, "run_start", schema=1)
        bad_json.wait_ack(0)  # still served after the bad line

        huge = RawClient(d.socket, timeout=20.0)
        assert huge.hello("huge")["op"] == "welcome"
        with pytest.raises(OSError):
            huge.send(
                b'{"op": "rec", "seq": 0, "record": {"type": "x", "pad": "' + b"a" * (5 << 20) + b'"}}\n'
            )
            huge.recv()
            huge.send(b"more\n")

        climber = RawClient(d.socket)
        welcome = climber.hello("../../etc/passwd")
        assert welcome["op"] == "welcome" and "/" not in welcome["run_id"]
        climber.record(0, "run_start", schema=1)
        climber.wait_ack(0)
        assert Path(welcome["trace"]).parent == d.traces

        old = RawClient(d.socket)
        reply = old.hello("future", protocol=99)
        assert reply["op"] == "error" and reply["code"] == "protocol" and "99" in reply["error"]

        silent = RawClient(d.socket)
        mumbler = RawClient(d.socket)
        mumbler.send(b"\xde\xad\xbe\xef" * 1000)  # no newline, ever
        t0 = time.monotonic()
        assert silent.closed_by_peer() and mumbler.closed_by_peer()
        assert time.monotonic() - t0 < 4.0

        # Everything above cost its own connection only: a fresh client is served.
        good = RawClient(d.socket)
        assert good.hello("after")["op"] == "welcome"
        good.record(0, "run_start", schema=1)
        good.wait_ack(0)
        assert d.alive()

        log = d.log()
        assert log.count("first line is not a hello") == 1
        assert log.count("not valid JSON") == 2  # the garbage hello, and the bad record line
        assert log.count("skipped (further bad lines are counted") == 1
        assert log.count("sent a line over 1048576 bytes") == 1
        assert log.count("speaks protocol 99") == 1
        assert log.count("said nothing within 1 s") == 1
        assert log.count("sent 4000 bytes but no hello line within 1 s") == 1
        assert "asked for '../../etc/passwd'" in log
        assert "Traceback" not in log
        for c in (garbage, bad_json, huge, climber, old, silent, mumbler, good):
            c.close()


def test_200_concurrent_clients(tmp_path: Path) -> None:
    with running_daemon(tmp_path, config=CONFIG_QUICK) as d:
        clients = [RawClient(d.socket, timeout=20.0) for _ in range(200)]
        for i, c in enumerate(clients):
            c.send({"op": "hello", "protocol": 1, "role": "run", "run_id": f"many-{i}", "token": None})
        ids = []
        for c in clients:
            welcome = c.recv()
            assert welcome is not None and welcome["op"] == "welcome"
            ids.append(welcome["run_id"])
        assert len(set(ids)) == 200
        for c in clients:
            c.record(0, "run_start", schema=1)
            c.record(1, "epoch", epoch=0, seconds=0.1)
            c.record(2, "run_end", ended="completed", epochs=1)
        for c in clients:
            c.wait_ack(2)
            c.close()
        d.wait_log(r"ended: completed after 1 epochs", count=200, timeout=20.0)
        assert len(d.trace_files()) == 200
        for run_id in ids[::37]:
            assert _types(d.trace(run_id)) == ["run_start", "epoch", "run_end"]
        assert d.alive()


def test_limits_per_uid(tmp_path: Path) -> None:
    config = """
[limits]
max_connections_per_uid = 3
max_runs_per_uid = 2
messages_per_second_per_uid = 100.0
message_burst_per_uid = 20
"""
    with running_daemon(tmp_path, config=config) as d:
        a, b = RawClient(d.socket), RawClient(d.socket)
        assert a.hello("a")["op"] == "welcome" and b.hello("b")["op"] == "welcome"
        c = RawClient(d.socket)
        reply = c.hello("c")
        assert reply["op"] == "error" and reply["code"] == "limit" and "runs attached" in reply["error"]
        d.wait_log("new run refused")
        c.close()
        wait_until(lambda: c.sock.fileno() == -1)
        time.sleep(0.2)  # the daemon sees c go
        extra = [RawClient(d.socket) for _ in range(2)]  # the third connection, then a fourth
        refused = extra[1].recv()
        assert refused is not None and refused["code"] == "limit" and "connections" in refused["error"]
        d.wait_log("connections, the per-uid limit")

        # 150 messages at 100/s with a burst of 20: slowed down, none lost.
        t0 = time.monotonic()
        for seq in range(150):
            a.record(seq, "notice", part="test", message=str(seq))
        a.wait_ack(149)
        assert time.monotonic() - t0 > 0.8
        assert d.log().count("over the message rate") == 1
        notices = [r for r in d.trace("a") if r["type"] == "notice"]
        assert len(notices) == 150
        b.send({"op": "bye"})  # b's run ends (it left before its first record): its place is free
        d.wait_log("run b left before its first record")
        extra[0].close()
        wait_until(lambda: extra[0].sock.fileno() == -1)
        time.sleep(0.2)
        again = RawClient(d.socket)
        assert again.hello("again")["op"] == "welcome"
        for x in (a, b, c, again, *extra):
            x.close()


def test_daemon_sigkilled_and_restarted_loses_no_record(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path).start()
    proc = start_fake_run(tmp_path, d.socket, epochs=8, period=0.4)
    try:
        wait_for_line(proc, "EPOCH 2")
        d.stop(signal.SIGKILL)
        wait_for_line(proc, "EPOCH 4")  # the run keeps going and buffers
        d.start()
        d.wait_log(r"run fake-run taken back")
        rc, out, err = _finish(proc)
        assert rc == 0, err
        assert "DONE" in out and "DONE 0" not in out  # it reconnected
        d.wait_log(r"run fake-run ended: completed after 8 epochs")
        records = d.trace("fake-run")
        assert [r["epoch"] for r in records if r["type"] == "epoch"] == list(range(8))
        assert _types(records).count("run_start") == 1 and records[-1]["ended"] == "completed"
        seqs = [r["seq"] for r in records if "seq" in r]
        assert seqs == list(range(len(seqs)))  # no gap, nothing twice
        assert "resumed by pid" in d.log()
        assert not (tmp_path / "embedded").exists()
    finally:
        _kill(proc)
        d.cleanup()


def test_daemon_gone_for_good_the_hook_falls_back_to_its_own_file(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path).start()
    proc = start_fake_run(tmp_path, d.socket, epochs=6, period=0.4, EPOCHWATCH_DAEMON_GRACE="1")
    try:
        wait_for_line(proc, "EPOCH 1")
        d.stop(signal.SIGKILL)
        rc, _out, err = _finish(proc)
        assert rc == 0, err
        assert err.count("writing the embedded trace") == 1
        from epochwatch.trace.reader import iter_records

        local = list(iter_records(tmp_path / "embedded" / "fake-run.jsonl"))
        assert local[0]["type"] == "run_start" and local[1]["type"] == "notice"
        assert local[-1]["type"] == "run_end"
        remote = d.trace("fake-run")
        got = [r["epoch"] for r in remote + local if r["type"] == "epoch"]
        assert sorted(set(got)) == list(range(6))
    finally:
        _kill(proc)
        d.cleanup()


def test_no_daemon_or_a_dead_socket_means_embedded(tmp_path: Path) -> None:
    proc = start_fake_run(tmp_path, tmp_path / "absent.sock", epochs=2, period=0.05)
    rc, out, err = _finish(proc)
    assert rc == 0 and "SINK embedded trace" in out and err == ""
    stale_dir = Path(os.path.realpath("/tmp")) / f"ew-stale-{os.getpid()}"
    stale_dir.mkdir(exist_ok=True)
    stale = stale_dir / "s.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(stale))  # a socket file nobody listens on, as a killed daemon leaves
        s.close()
        run_dir = tmp_path / "second"
        run_dir.mkdir()
        proc = start_fake_run(run_dir, stale, epochs=2, period=0.05)
        rc, out, err = _finish(proc)
        assert rc == 0 and "SINK embedded trace" in out
        assert err.count("\n") == 1 and "not usable" in err
        from epochwatch.trace.reader import iter_records

        assert _types(list(iter_records(run_dir / "embedded" / "fake-run.jsonl"))) == [
            "run_start",
            "epoch",
            "epoch",
            "run_end",
        ]
    finally:
        s.close()
        stale.unlink(missing_ok=True)
        stale_dir.rmdir()


def test_sigterm_flushes_and_the_run_resumes_with_the_next_daemon(tmp_path: Path) -> None:
    config = """
[sampling]
full_rate_seconds = 0.5
window_seconds = 600.0
"""
    d = DaemonProc(tmp_path, config=config).start()
    # The run goes on through epoch 8 while the daemon stops (what it writes then waits in
    # its sink), and holds before its last epoch until the next daemon listens: the run must
    # outlive the restart however slowly a loaded machine restarts it.
    go = tmp_path / "daemon-back"
    proc = start_fake_run(
        tmp_path, d.socket, epochs=10, period=0.3, FAKE_HOLD_AFTER="8", FAKE_HOLD_UNTIL=str(go)
    )
    try:
        wait_for_line(proc, "EPOCH 5")
        assert d.stop(signal.SIGTERM) == 0
        text = d.log()
        assert "stopped: 1 runs left resumable (1 were connected); traces flushed" in text
        records = d.trace("fake-run")
        windows = [r for r in records if r["type"] == "sample" and "samples" in r]
        assert windows and windows[-1]["samples"] >= 1 and "max" in windows[-1]
        d.start()
        go.touch()
        rc, _, err = _finish(proc)
        assert rc == 0, err
        d.wait_log(r"run fake-run ended: completed after 10 epochs")
        records = d.trace("fake-run")
        assert [r["epoch"] for r in records if r["type"] == "epoch"] == list(range(10))
    finally:
        _kill(proc)
        d.cleanup()


def test_sighup_reloads_the_config(tmp_path: Path) -> None:
    with running_daemon(tmp_path, config="[sampling]\ninterval_seconds = 1.0\n") as d:
        assert d.config_path is not None
        d.config_path.write_text(
            'log_level = "info"\n[sampling]\ninterval_seconds = 0.5\n[limits]\nmax_runs_per_uid = 7\n'
        )
        d.send_signal(signal.SIGHUP)
        text = d.wait_log(r"config reloaded from")
        assert "sampling.interval_seconds 1.0 -> 0.5" in text and "limits.max_runs_per_uid 64 -> 7" in text

        d.config_path.write_text("[sampling]\ninterval_seconds = 'fast'\n")
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"config reload failed, keeping the running config: .*interval_seconds")

        d.config_path.write_text('socket = "/tmp/elsewhere.sock"\nsocket_mode = "0600"\n')
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"config: socket_mode only change at a restart")  # --socket overrides the file
        assert d.alive()
        client = RawClient(d.socket)
        assert client.hello("still-here")["op"] == "welcome"
        client.close()


@pytest.mark.parametrize("abstract", [False, True])
def test_sd_notify_messages_arrive(tmp_path: Path, abstract: bool) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"ew-notify-{os.getpid()}-{time.monotonic_ns()}"
    if abstract:
        listener.bind("\0" + name)
        address = "@" + name
    else:
        path = f"/tmp/{name}.sock"
        listener.bind(path)
        address = path
    listener.settimeout(10.0)
    got: list[str] = []

    def until(prefix: str) -> None:
        while not any(m.startswith(prefix) for m in got):
            got.extend(listener.recv(4096).decode().splitlines())

    try:
        with running_daemon(tmp_path, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}) as d:
            until("READY=1")
            got.clear()
            until("WATCHDOG=1")
            got.clear()
            until("WATCHDOG=1")
            c = RawClient(d.socket)
            c.hello("notified")
            until("STATUS=1 runs (1 connected)")
            d.send_signal(signal.SIGHUP)
            until("RELOADING=1")
            until("READY=1")
            assert d.stop(signal.SIGTERM) == 0
            until("STOPPING=1")
            c.close()
    finally:
        listener.close()
        if not abstract:
            os.unlink(address)


def test_restart_after_the_run_died_while_the_daemon_was_down(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path).start()
    proc = start_fake_run(tmp_path, d.socket, epochs=1, period=0.2, end="hang")
    try:
        wait_for_line(proc, "EPOCH 0")
        wait_until(
            lambda: '"epoch":0' in (d.traces / "fake-run.jsonl").read_text(), what="epoch 0 in the trace"
        )
        d.stop(signal.SIGKILL)
        _kill(proc)
        d.start()
        d.wait_log("run fake-run vanished while the daemon was down")
        end = d.trace("fake-run")[-1]
        assert end["ended"] == "vanished" and "daemon was not running" in end["hint"]
        assert not list((d.state / "sessions").glob("*.json"))
    finally:
        _kill(proc)
        d.cleanup()


def test_watch_records_are_checked_and_watched(tmp_path: Path) -> None:
    watched = tmp_path / "ckpt"
    watched.mkdir()
    (watched / "a.bin").write_bytes(b"x" * 1000)
    later = tmp_path / "later"
    with running_daemon(tmp_path) as d:
        c = RawClient(d.socket)
        c.hello("watcher")
        c.record(0, "run_start", schema=1)
        c.record(1, "watch", path=str(watched), role="checkpoint")
        c.record(2, "watch", path="relative/dir", role="user")
        c.record(3, "watch", path=str(later), role="tensorboard")
        c.wait_ack(3)
        later.mkdir()
        (later / "events").write_bytes(b"y" * 10)

        def dirs_seen() -> bool:
            samples = [r for r in d.trace("watcher") if r["type"] == "sample"]
            return bool(samples) and {d["path"] for d in samples[-1].get("dirs", [])} == {
                str(watched),
                str(later),
            }

        wait_until(dirs_seen, timeout=10.0, what="both directories in a sample")
        records = d.trace("watcher")
        watches = [r for r in records if r["type"] == "watch"]
        # the daemon only looks at the request; the run's worker resolves and walks it
        assert watches[0]["daemon_watch"] == "asked"
        assert watches[1]["daemon_watch"].startswith("refused: not an absolute path")
        assert watches[2]["daemon_watch"] == "asked"
        last = [r for r in records if r["type"] == "sample"][-1]["dirs"]
        entry = next(e for e in last if e["path"] == str(watched))
        free = entry.pop("free_bytes")  # measured by the run's worker, as its user
        assert {"path": str(watched), "bytes": 1000, "files": 1, "role": "checkpoint"} == entry
        assert isinstance(free, int) and free > 0
        assert d.log().count("not watching relative/dir") == 1
        c.close()


def test_online_detection_writes_findings_and_logs_them_once(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as d:
        c = RawClient(d.socket)
        c.hello("slowing")
        c.record(0, "run_start", schema=1)
        for n in range(25):
            c.record(
                n + 1, "epoch", epoch=n, seconds=1.0 + 0.1 * n, host={"rss_bytes": 10**9 + 5 * 10**7 * n}
            )
        c.wait_ack(25)
        d.wait_log(r"finding slowdown")  # detectors run right after the ack
        d.wait_log(r"finding host_memory_growth")
        records = d.trace("slowing")
        findings = [r for r in records if r["type"] == "finding"]
        kinds = sorted(f["kind"] for f in findings)
        assert kinds == ["host_memory_growth", "slowdown"]
        assert all(f["source"] == "daemon" and f["run_id"] == "slowing" for f in findings)
        log = d.wait_log(r"finding slowdown")
        assert log.count("finding slowdown") == 1 and log.count("finding host_memory_growth") == 1
        # the hook may have found the same thing itself: written once only
        dup = next(f for f in findings if f["kind"] == "slowdown")
        c.record(26, "finding", kind="slowdown", target=dup.get("target"), severity="warning", title="dup")
        c.wait_ack(26)
        assert [r["type"] for r in d.trace("slowing")].count("finding") == 2
        c.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to attach as another user")
def test_another_users_run_is_theirs(tmp_path: Path) -> None:
    """A run attached by uid 65534: its trace is handed to that uid; it sees the run, root too."""
    from epochwatch.cli.status import query

    with running_daemon(tmp_path) as d:
        result_r, result_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.setgid(65534)
                os.setuid(65534)
                c = RawClient(d.socket)
                welcome = c.hello("nobodys-run")
                c.record(0, "run_start", schema=1, env={"script": "theirs.py"})
                c.wait_ack(0)
                mine = query(str(d.socket))
                os.write(result_w, json.dumps({"welcome": welcome, "mine": mine}).encode())
                os.close(result_w)
                os.read(go_r, 1)  # stay attached until the parent has looked
            finally:
                os._exit(0)
        os.close(result_w)
        with os.fdopen(result_r, "rb") as f:
            got = json.loads(f.read())
        try:
            assert [r["run_id"] for r in got["mine"]] == ["nobodys-run"]
            assert got["mine"][0]["uid"] == 65534 and got["mine"][0]["script"] == "theirs.py"
            trace = Path(got["welcome"]["trace"])
            st = trace.stat()
            assert st.st_uid == 65534 and st.st_mode & 0o777 == 0o640
            assert [r["run_id"] for r in query(str(d.socket))] == ["nobodys-run"]  # root sees all
        finally:
            os.write(go_w, b"x")
            os.waitpid(pid, 0)
            os.close(go_r)
            os.close(go_w)
        d.wait_log("run nobodys-run vanished", timeout=5.0)


def test_the_daemon_never_imports_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['epochwatch', 'daemon', '--help']\n"
        "try:\n    runpy.run_module('epochwatch', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "import epochwatch.daemon.server, epochwatch.daemon.session, epochwatch.analysis.online\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=base_env(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
