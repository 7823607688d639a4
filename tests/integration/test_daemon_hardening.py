"""Issue 18's daemon-side defects, each reproduced as another user against a real daemon.

Every test here drives the root daemon from a process that really runs as uid 65534
(`other_user.OtherUserClient`), since what matters is what that uid can make root do.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from epochwatch.trace import schema
from tests.integration.daemon_harness import RawClient, running_daemon, wait_until
from tests.integration.other_user import NOBODY, OtherUserClient, drop_to, shared_tmp

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def _samples(d, run_id: str) -> list[dict]:
    return [r for r in d.trace(run_id) if r["type"] == "sample"]


def test_a_watched_directory_replaced_by_a_link_or_a_private_one_is_not_walked(tmp_path: Path) -> None:
    """Item 1: after a watched directory is deleted, its comeback is checked as the run's uid
    and never followed through a symlink: a root-only directory's sizes stay out of the trace."""
    with shared_tmp() as base, running_daemon(tmp_path) as d:
        home = base / "home"
        home.mkdir()
        os.chown(home, NOBODY, NOBODY)
        secret = base / "secret"
        secret.mkdir(mode=0o700)
        (secret / "key").write_bytes(b"s" * 5000)
        linked, private = home / "linked", home / "private"
        for path in (linked, private):
            path.mkdir()
            (path / "ckpt").write_bytes(b"c" * 100)
            os.chown(path, NOBODY, NOBODY)
            os.chown(path / "ckpt", NOBODY, NOBODY)
        c = OtherUserClient(d.socket, "watcher")
        run_id = c.welcome["run_id"]
        c.record(0, "run_start", schema=1)
        c.record(1, "watch", path=str(linked), role="checkpoint")
        c.record(2, "watch", path=str(private), role="checkpoint")
        c.wait_ack(2)

        def both_counted() -> bool:
            s = _samples(d, run_id)
            counted = dict(schema.dir_entries(s[-1].get("dirs"))) if s else {}
            return all(counted.get(str(p), {}).get("bytes") == 100 for p in (linked, private))

        wait_until(both_counted, timeout=15.0, what="both directories counted")
        shutil.rmtree(linked)
        shutil.rmtree(private)
        linked.symlink_to(secret)  # the user may: home is theirs
        private.mkdir(mode=0o700)  # as if root made it there: the user cannot read it
        (private / "key").write_bytes(b"p" * 7000)

        def notices() -> list[dict]:
            return [r for r in d.trace(run_id) if r["type"] == "notice" and r.get("part") == "dirs"]

        n0 = len(_samples(d, run_id))
        wait_until(lambda: len(_samples(d, run_id)) >= n0 + 4, timeout=15.0, what="four more samples")
        for sample in _samples(d, run_id):
            for path, entry in schema.dir_entries(sample.get("dirs")):
                assert entry["bytes"] in (0, 100), (path, entry)  # 5000 / 7000: leaked
        # Both come (the private one was missed when tmpfs gave it the deleted one's inode,
        # see samplers/nofollow.ident), and once each.
        wait_until(lambda: len(notices()) >= 2, timeout=15.0, what="two notices")
        c.close()
        assert len(notices()) == 2, notices()
        assert {n["path"] for n in notices()} == {str(linked), str(private)}
        assert all(f"uid {NOBODY} cannot read it" in n["message"] for n in notices())
        assert d.log().count("stopped watching") == 2  # said once each


def _euid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("Uid:"):
                return int(line.split()[2])
    return -1


def test_a_process_that_execs_a_setuid_program_is_not_sampled_any_more(tmp_path: Path) -> None:
    """Item 2: the run's process execs a setuid-root program (same pid, connection kept):
    the daemon stops sampling it (no sample of the root process in the user's trace) and
    says so once in the trace."""
    with shared_tmp() as base, running_daemon(tmp_path) as d:
        sleeper = base / "sleep"
        shutil.copy2(shutil.which("sleep") or "/bin/sleep", sleeper)
        os.chmod(sleeper, 0o4755)  # setuid root
        c = OtherUserClient(d.socket, "setuid")
        run_id = c.welcome["run_id"]
        try:
            c.record(0, "run_start", schema=1)
            c.wait_ack(0)
            wait_until(lambda: len(_samples(d, run_id)) >= 2, timeout=15.0, what="two samples")
            c.exec(str(sleeper), "30")
            wait_until(lambda: _euid(c.pid) == 0, timeout=10.0, what="the exec")
            execed = time.time()
            time.sleep(3.5)  # three ticks: no sample of the root process may come
            late = [s for s in _samples(d, run_id) if s["t"] >= execed]
            assert late == []
            notices = [r for r in d.trace(run_id) if r["type"] == "notice" and r.get("part") == "sampler"]
            assert len(notices) == 1 and "stopped sampling" in notices[0]["message"]
            assert d.log().count("stopped sampling") == 1
        finally:
            os.kill(c.pid, 9)
            c.close()


def _send_all(c, records: list[dict]) -> None:
    for seq, rec in enumerate(records):
        c.record(seq, rec["type"], **{k: v for k, v in rec.items() if k not in ("type", "run_id")})
    c.wait_ack(len(records) - 1)


def _restore_findings(d, run_id: str) -> list[dict]:
    return [r for r in d.trace(run_id) if r["type"] == "finding" and "restore" in str(r.get("kind"))]


def test_a_restore_names_its_parent_only_among_the_users_own_daemon_traces(tmp_path: Path) -> None:
    """The daemon (root) follows a restore's `parent.trace` only to a trace of its own, of a
    run of the same uid, by run id: never to a path the client names (a root-only file) nor
    to another user's run."""
    from tests.integration.daemon_harness import RawClient
    from tests.unit import restore_records as rr

    with shared_tmp() as base, running_daemon(tmp_path) as d:
        outside = base / "outside.jsonl"  # a root-only file that happens to be a trace
        from epochwatch.trace.writer import TraceWriter

        with TraceWriter(outside) as w:
            for rec in rr.parent_records("outside"):
                w.write(rec)
        os.chmod(outside, 0o600)
        root_run = RawClient(d.socket)
        root_parent = root_run.hello("rootparent")["run_id"]
        _send_all(root_run, rr.parent_records("rootparent"))
        mine = OtherUserClient(d.socket, "myparent")
        my_parent = mine.welcome["run_id"]
        _send_all(mine, rr.parent_records("myparent"))

        def child(name: str, trace: str) -> str:
            link = {"run_id": "p", "trace": trace, "match": "sha256", "save_sha256": rr.SHA}
            c = OtherUserClient(d.socket, name)
            _send_all(c, rr.child_records(name, restore_over={"parent": link}, fit_over={"batch_size": 64}))
            return str(c.welcome["run_id"])

        by_path = child("by-path", str(outside))
        theirs = child("theirs", str(d.traces / f"{root_parent}.jsonl"))
        own = child("own", f"/somewhere/else/{my_parent}.jsonl")
        # the daemon analyzes a batch right after acknowledging it, on its one loop: by
        # the time `own` was acknowledged, the two before it were analyzed
        assert _restore_findings(d, by_path) == []  # root-only file: never read
        assert _restore_findings(d, theirs) == []  # another uid's run: never read
        wait_until(lambda: _restore_findings(d, own), timeout=15.0, what="the own parent's finding")
        assert _restore_findings(d, own)[0]["evidence"]["parent_run"] == my_parent


def test_a_stalled_daemon_and_the_hooks_takeover_write_no_epoch_twice(tmp_path: Path) -> None:
    """Item 4: the daemon stalls (SIGSTOP) while the run ends; the hook writes what was not
    acknowledged to its embedded trace after its close timeout and tells the daemon so; the
    daemon, woken, drops those records: every epoch is in exactly one of the two traces."""
    import signal

    from epochwatch.trace.reader import iter_records
    from tests.integration.daemon_harness import start_fake_run, wait_for_line

    with running_daemon(tmp_path) as d:
        go = tmp_path / "go"  # the run holds after epoch 2 until the daemon is stopped
        proc = start_fake_run(
            tmp_path, d.socket, epochs=10, period=0.1, FAKE_HOLD_AFTER="2", FAKE_HOLD_UNTIL=str(go)
        )
        try:
            wait_for_line(proc, "EPOCH 2")
            wait_until(lambda: 2 in _epochs_of(d.trace("fake-run")), timeout=30.0, what="epoch 2 written")
            d.send_signal(signal.SIGSTOP)
            go.touch()
            try:
                proc.communicate(timeout=60)
            finally:
                d.send_signal(signal.SIGCONT)
            assert proc.returncode == 0
            wait_until(lambda: "run fake-run ended" in d.log(), timeout=30.0, what="the run's end")
            daemon_epochs = _epochs_of(d.trace("fake-run"))
            embedded = _epochs_of(list(iter_records(tmp_path / "embedded" / "fake-run.jsonl")))
            assert sorted(daemon_epochs + embedded) == list(range(10))  # each exactly once
            assert embedded and daemon_epochs
            notice = [r for r in d.trace("fake-run") if r.get("handover_seq") is not None]
            assert len(notice) == 1
            assert not any(r["type"] == "run_end" for r in d.trace("fake-run"))  # it is the hook's
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _epochs_of(records: list[dict]) -> list[int]:
    return [r["epoch"] for r in records if r["type"] == "epoch"]


def _read_nothing(sock_path: Path, runs: int, unread: int, ready_w: int) -> None:
    """In a forked child that is NOBODY: `runs` runs of 20 findings whose fields are 300
    control characters (1,800 bytes of JSON each), then `unread` status connections that
    never read their replies; held until the test kills it."""
    import socket

    field = "\x01" * 300
    clients = []
    for i in range(runs):
        c = RawClient(sock_path)
        c.hello(f"mem{i}")
        c.record(0, "run_start", schema=1)
        for j in range(20):
            c.record(1 + j, "finding", kind=f"k{j}", severity=field, title=field, target=field, epoch=field)
        c.wait_ack(20)
        clients.append(c)
    held = []
    for _ in range(unread):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(str(sock_path))
        s.sendall(b'{"op":"hello","protocol":1,"role":"status"}\n')
        held.append(s)
    os.write(ready_w, b"x")
    time.sleep(120)


def test_status_replies_nobody_reads_are_counted_and_cut_off(tmp_path: Path) -> None:
    """Audit: a status reply was sent past the unread-bytes limit and held until read: 150
    status connections that never read grew the daemon from 31 MiB to 1.7 GB (past the
    unit's MemoryMax), for good. Now each reply's bytes count against the uid's buffered
    bytes (over: refused) and an unread one is cut off after the hello's timeout."""
    config = "[limits]\nhello_timeout_seconds = 2.0\n"
    with shared_tmp() as root, running_daemon(root, config=config) as d:
        assert d.proc is not None
        before = _rss_kib(d.proc.pid)
        fds = len(os.listdir(f"/proc/{d.proc.pid}/fd"))
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                drop_to(NOBODY)
                _read_nothing(d.socket, runs=8, unread=40, ready_w=ready_w)
            finally:
                os._exit(0)
        try:
            os.read(ready_r, 1)
            wait_until(lambda: "status refused" in d.log(), timeout=10.0, what="a status reply refused")
            assert _rss_kib(d.proc.pid) - before < 40 << 10
            # 8 runs (a connection, a trace and a pid watch each) and the replies taken, about
            # 14 of 1.1 MB (the rest refused)
            assert len(os.listdir(f"/proc/{d.proc.pid}/fd")) >= fds + 24 + 8
            wait_until(
                lambda: len(os.listdir(f"/proc/{d.proc.pid}/fd")) <= fds + 24 + 2,
                timeout=10.0,
                what="the cut-off",
            )
        finally:
            os.kill(pid, 9)
            os.waitpid(pid, 0)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def _as_nobody(fn: Any, *args: Any) -> None:
    """Run `fn(*args)` in a forked child that is NOBODY; its failure fails the test."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            drop_to(NOBODY)
            fn(*args)
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0


def _hostile_numbers_and_floods(sock_path: Path, ready_w: int, done_r: int) -> None:
    c = RawClient(sock_path)
    c.hello("bigint")
    c.record(0, "run_start", schema=1)
    for n in range(3):  # a count no process traces: 1e30 made a 100-bit int no view could encode
        c.record(1 + n, "epoch", epoch=n, seconds=1.0, retraces={"new": 1e30})
    c.wait_ack(3)
    bad = RawClient(sock_path)
    bad.hello("seq")
    bad.send({"op": "rec", "seq": 2**64 - 1, "record": {"type": "epoch", "epoch": 9}})
    for _ in range(200):  # unknown resume tokens: each had its own warning line
        flood = RawClient(sock_path)
        flood.send({"op": "hello", "protocol": 1, "role": "run", "token": "nope"})
        flood.recv()
        flood.close()
    os.write(ready_w, b"x")
    os.read(done_r, 1)  # the run stays attached while root asks


def test_a_users_hostile_numbers_and_floods_cost_only_their_own_lines(tmp_path: Path) -> None:
    """Audit: another user's run with `retraces.new = 1e30` made root's `status` and `top`
    fail for every run (an int over 64 bits no encoder writes); a seq of 2**64 - 1 broke
    the run's resume; 2,000 hellos with unknown tokens wrote 2,000 warning lines."""
    with shared_tmp() as root, running_daemon(root) as d:
        ready_r, ready_w = os.pipe()
        done_r, done_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                drop_to(NOBODY)
                _hostile_numbers_and_floods(d.socket, ready_w, done_r)
            finally:
                os._exit(0)
        try:
            os.read(ready_r, 1)
            status = RawClient(d.socket)
            status.send({"op": "hello", "protocol": 1, "role": "status"})
            reply = status.recv()
            assert reply is not None and reply.get("op") == "status", reply
            runs = {r["run_id"]: r for r in reply["runs"]}
            assert "bigint" in runs and "seq" in runs, runs.keys()
            assert d.log().count("unknown token") <= 25  # a burst of 20, then one every 2 s
        finally:
            os.write(done_w, b"x")
            os.waitpid(pid, 0)


def _empty_then_other(sock_path: Path, out_w: int) -> None:
    c = RawClient(sock_path)
    c.hello("train")
    c.send({"op": "bye"})
    c.close()
    time.sleep(0.5)
    os.write(out_w, b"x")


def test_a_trace_removed_is_no_longer_named_to_its_uid(tmp_path: Path) -> None:
    """Audit: a run that left before its first record has its trace removed, but the welcome
    went on naming it to that uid after the name went to another uid's run."""
    with shared_tmp() as root, running_daemon(root) as d:
        r, w = os.pipe()
        _as_nobody(_empty_then_other, d.socket, w)
        os.read(r, 1)
        wait_until(lambda: "no trace kept" in d.log(), timeout=10.0, what="the empty trace removed")
        theirs = RawClient(d.socket)  # root's run takes the name
        assert theirs.hello("train")["run_id"] == "train"
        try:
            again = OtherUserClient(d.socket, "again")
            assert "train.jsonl" not in again.welcome["own_traces"]
            again.close()
        finally:
            theirs.close()


def test_a_uid_past_its_traces_is_refused_new_runs(tmp_path: Path) -> None:
    """Audit: a loop of hello, run_end, bye left 10,000 trace files in 50 s, nothing
    metered; `max_traces_per_uid` bounds them (root is not limited)."""
    config = "[limits]\nmax_traces_per_uid = 2\n"
    with shared_tmp() as root, running_daemon(root, config=config) as d:
        kept = []
        for n in range(2):
            c = OtherUserClient(d.socket, f"r{n}")
            c.record(0, "run_start", schema=1)
            c.wait_ack(0)
            kept.append(c)
        third = OtherUserClient(d.socket, "r2")
        assert third.welcome.get("op") == "error" and "max_traces_per_uid" in third.welcome["error"]
        for c in (*kept, third):
            c.close()
