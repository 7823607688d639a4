"""Issue 18's daemon-side defects, each reproduced as another user against a real daemon.

Every test here drives the root daemon from a process that really runs as uid 65534
(`other_user.OtherUserClient`), since what matters is what that uid can make root do.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from epochwatch.trace import schema
from tests.integration.daemon_harness import running_daemon, wait_until
from tests.integration.other_user import NOBODY, OtherUserClient, shared_tmp

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
