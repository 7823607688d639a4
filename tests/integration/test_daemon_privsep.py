"""Issue 22: the root daemon does a user's file-system work with that user's rights only.

Each test drives a real root daemon from a process that really is uid 65534
(`other_user.OtherUserClient`) and reproduces an attack of the audit; each failed on the
daemon before privilege separation (walks as root, /proc roots, a list as a role, unbounded
pending watches, a parent read on the event loop, a restart that read whole traces, a dead
run's bytes kept charged).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from epochwatch.trace import schema
from tests.integration.daemon_harness import DaemonProc, RawClient, running_daemon, wait_until
from tests.integration.other_user import NOBODY, OtherUserClient, drop_to, shared_tmp

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user"),
    pytest.mark.serial,  # holds the daemon to 1 s under a load of its own: after the rest
]


def _samples(d: DaemonProc, run_id: str) -> list[dict]:
    return [r for r in d.trace(run_id) if r["type"] == "sample"]


def _counted(d: DaemonProc, run_id: str) -> dict[str, dict]:
    s = _samples(d, run_id)
    return dict(schema.dir_entries(s[-1].get("dirs"))) if s else {}


def _proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_proc_status(int(entry)).get("PPid", "0")) == pid:
                    out.append(int(entry))
            except (OSError, ValueError):
                continue
    return out


def _workers(d: DaemonProc) -> list[int]:
    """The daemon's per-uid workers: children of its zygote, which is its child."""
    assert d.proc is not None
    return [w for z in _children(d.proc.pid) for w in _children(z)]


def _status(d: DaemonProc) -> list[dict]:
    """Root's `status`: every run."""
    c = RawClient(d.socket, timeout=30.0)
    try:
        c.send({"op": "hello", "protocol": 1, "role": "status"})
        reply = c.recv()
        assert reply is not None and reply.get("op") == "status", reply
    finally:
        c.close()
    return list(reply["runs"])


def _status_seconds(d: DaemonProc) -> float:
    """How long root's `status` takes to be answered."""
    started = time.monotonic()
    _status(d)
    return time.monotonic() - started


def test_a_walk_below_the_watched_directory_has_only_the_users_rights(tmp_path: Path) -> None:
    """Audit item 1: uid 65534 watches root's 0755 directory that holds a 0700 subdirectory
    with a 5 MB file: only what the user can read is counted (it was `bytes 5000100`), and
    the walk ran in a worker that is uid 65534 with no groups, capabilities or way back."""
    with shared_tmp() as base, running_daemon(tmp_path) as d:
        shared = base / "shared"
        shared.mkdir(mode=0o755)
        (shared / "public.bin").write_bytes(b"p" * 100)
        private = shared / "private"
        private.mkdir(mode=0o700)
        with (private / "secret.bin").open("wb") as fh:
            fh.truncate(5_000_000)
        c = OtherUserClient(d.socket, "walker")
        run_id = c.welcome["run_id"]
        try:
            c.record(0, "run_start", schema=1)
            c.record(1, "watch", path=str(shared), role="checkpoint")
            c.wait_ack(1)
            wait_until(lambda: str(shared) in _counted(d, run_id), timeout=15.0, what="the directory counted")
            wait_until(lambda: len(_samples(d, run_id)) >= 3, timeout=15.0, what="three samples")
            for sample in _samples(d, run_id):
                for _, entry in schema.dir_entries(sample.get("dirs")):
                    assert entry["bytes"] == 100 and entry["files"] == 1, entry
            workers = _workers(d)
            assert len(workers) == 1, workers
            status = _proc_status(workers[0])
            assert status["Uid"].split() == [str(NOBODY)] * 4
            assert status["Gid"].split() == [str(NOBODY)] * 4
            assert status["Groups"].split() in ([], [str(NOBODY)])
            assert int(status["CapEff"], 16) == int(status["CapPrm"], 16) == 0
            assert status["NoNewPrivs"] == "1"
            limits = Path(f"/proc/{workers[0]}/limits").read_text()
            assert "unlimited" not in next(line for line in limits.splitlines() if "Max data size" in line)
        finally:
            c.close()
        wait_until(lambda: _workers(d) == [], timeout=15.0, what="the worker gone with its last run")


def test_kernel_trees_and_other_processes_directories_are_refused(tmp_path: Path) -> None:
    """Audit item 1: /proc and /sys were accepted as roots (34,683 files walked) and
    `/proc/<other pid>/cwd` wrote another user's working directory into the trace. Now every
    root under /proc, /sys, /dev is refused, also through a symlink the user made, and
    nothing of the other process's directory reaches the trace."""
    with shared_tmp() as base, running_daemon(tmp_path) as d:
        theirs = base / "their-project-dir"
        theirs.mkdir(mode=0o755)
        (theirs / "data.bin").write_bytes(b"d" * 300)
        other = subprocess.Popen(["sleep", "60"], cwd=theirs)  # root's process
        home = base / "home"
        home.mkdir()
        os.chown(home, NOBODY, NOBODY)
        (home / "to-sys").symlink_to("/sys/kernel")
        (home / "to-cwd").symlink_to(f"/proc/{other.pid}/cwd")
        c = OtherUserClient(d.socket, "kernel")
        run_id = c.welcome["run_id"]
        asked = [
            "/proc",
            "/sys",
            "/dev",
            f"/proc/{other.pid}/cwd",
            "//proc/self/cwd",  # normpath keeps "//": had watched the worker's cwd (audit13)
            str(home / "to-sys"),
            str(home / "to-cwd"),
        ]
        try:
            c.record(0, "run_start", schema=1)
            for n, path in enumerate(asked, start=1):
                c.record(n, "watch", path=path, role="user")
            c.wait_ack(len(asked))

            def answered() -> list[dict]:
                return [r for r in d.trace(run_id) if r["type"] == "notice" and r.get("part") == "dirs"]

            wait_until(lambda: len(answered()) == 2, timeout=15.0, what="the worker's two refusals")
            wait_until(lambda: len(_samples(d, run_id)) >= 3, timeout=15.0, what="three samples")
            watches = [r for r in d.trace(run_id) if r["type"] == "watch"]
            assert all("never watched" in w["daemon_watch"] for w in watches[:5]), watches
            assert "never watched" in answered()[0]["message"]  # to-sys, resolved as the user
            assert "cannot resolve" in answered()[1]["message"]  # the user may not read its link
            assert all(not s.get("dirs") for s in _samples(d, run_id))
            text = (d.traces / f"{run_id}.jsonl").read_text()
            assert str(theirs) not in text  # the other process's working directory never leaks
        finally:
            c.close()
            other.kill()
            other.wait()


def test_a_list_as_a_role_and_oversized_paths_are_refused_cleanly(tmp_path: Path) -> None:
    """Audit: a watch record with a list as its role raised an internal error; pending
    watches of 1 MB paths were kept per run without bound (6 runs x 32: 32 -> 232 MB). Now
    both are refused at the request, and a uid's runs together hold at most 64 watches."""
    with running_daemon(tmp_path) as d:
        clients = [OtherUserClient(d.socket, f"pending-{n}") for n in range(3)]
        try:
            first = clients[0]
            first.record(0, "run_start", schema=1)
            first.record(1, "watch", path="/tmp/somewhere", role=["checkpoint"])
            first.record(2, "watch", path="/nowhere/" + "x" * 200_000, role="user")
            first.wait_ack(2)
            watches = [r for r in d.trace(first.welcome["run_id"]) if r["type"] == "watch"]
            assert watches[0]["daemon_watch"].startswith("refused: not a role")
            assert watches[1]["daemon_watch"] == "refused: a path longer than 4096 bytes"
            assert "internal" not in d.log().lower() and "Traceback" not in d.log()
            for n, c in enumerate(clients):
                seq0 = 3 if n == 0 else 0
                if n:
                    c.record(0, "run_start", schema=1)
                for k in range(32):
                    c.record(seq0 + 1 + k, "watch", path=f"/nowhere/run{n}/dir{k}", role="user")
                c.wait_ack(seq0 + 32)
            from epochwatch.daemon.runwatch import MAX_WATCHES_PER_UID

            states = [
                r["daemon_watch"]
                for c in clients
                for r in d.trace(c.welcome["run_id"])
                if r["type"] == "watch"
            ]
            assert states.count("asked") == MAX_WATCHES_PER_UID
            assert sum(f"uid {NOBODY} already watch" in s for s in states) == 3 * 32 - MAX_WATCHES_PER_UID
        finally:
            for c in clients:
                c.close()


def test_a_huge_parent_trace_never_stalls_the_daemon(tmp_path: Path) -> None:
    """Audit: one restore naming a 179 MB parent trace (its user owns and can grow it)
    stalled the event loop about 70 s and grew the daemon from 158 MB to 1.59 GB. Now the
    parent is read off the loop, as the user, refused by size: `status` answers within
    1 s throughout, and the daemon does not grow by the parent's size."""
    from tests.unit import restore_records as rr

    with running_daemon(tmp_path) as d:
        parent = OtherUserClient(d.socket, "bigparent")
        parent_id = parent.welcome["run_id"]
        recs = rr.parent_records("bigparent")
        for seq, rec in enumerate(recs):
            parent.record(seq, rec["type"], **{k: v for k, v in rec.items() if k not in ("type", "run_id")})
        parent.wait_ack(len(recs) - 1)
        line = b'{"type":"epoch","run_id":"bigparent","epoch":1,"pad":"' + b"z" * 900 + b'"}\n'
        with (d.traces / f"{parent_id}.jsonl").open("ab") as fh:  # as its user could
            fh.write(line * (180_000_000 // len(line)))
        assert d.proc is not None
        rss_before = _rss(d.proc.pid)
        link = {"run_id": "p", "trace": f"{parent_id}.jsonl", "match": "sha256", "save_sha256": rr.SHA}
        child = OtherUserClient(d.socket, "child")
        records = rr.child_records("child", restore_over={"parent": link})
        try:
            for seq, rec in enumerate(records):
                child.record(
                    seq, rec["type"], **{k: v for k, v in rec.items() if k not in ("type", "run_id")}
                )
            slowest = max(_status_seconds(d) for _ in range(10))
            child.wait_ack(len(records) - 1)
            slowest = max(slowest, *(_status_seconds(d) for _ in range(10)))
        finally:
            child.close()
            parent.close()
        assert slowest < 1.0
        assert _rss(d.proc.pid) - rss_before < 100 << 20
        wait_until(lambda: "parent trace" in d.log(), timeout=15.0, what="the refusal logged")
        assert "over the limit" in d.log()


def _rss(pid: int) -> int:
    return int(_proc_status(pid)["VmRSS"].split()[0]) * 1024


def test_restart_time_does_not_grow_with_what_users_wrote(tmp_path: Path) -> None:
    """Audit: take-back read whole traces (300 MB: 4.3 s; a few GB would pass the 30 s
    watchdog). A trace grown to 4 GB (sparse, as its user can) is taken back at once, its
    epochs counted from the mark the daemon saved, its bytes never read."""
    d = DaemonProc(tmp_path)
    try:
        d.start()
        alive = OtherUserClient(d.socket, "alive")
        alive_id = alive.welcome["run_id"]
        alive.record(0, "run_start", schema=1)
        for n in range(5):
            alive.record(n + 1, "epoch", epoch=n, seconds=1.0)
        alive.wait_ack(5)
        wait_until(lambda: _settled(d, alive_id, 5), timeout=20.0, what="the run's mark")
        d.send_signal(signal.SIGKILL)
        d.proc.wait()  # type: ignore[union-attr]
        with (d.traces / f"{alive_id}.jsonl").open("r+b") as fh:  # its user grows it
            fh.truncate(4 << 30)
        started = time.monotonic()
        d.start()
        took = time.monotonic() - started
        assert f"run {alive_id} taken back" in d.log()
        assert took < 10.0, took
        runs = {r["run_id"]: r for r in _status(d)}
        assert runs[alive_id]["epochs"] == 5
        alive.close()
    finally:
        d.cleanup()


def test_a_run_that_died_while_the_daemon_was_down_releases_its_bytes(tmp_path: Path) -> None:
    """Audit: a run that died while the daemon was down stayed charged to its uid's byte
    budget until the next restart. Now the uid's next run has the bytes again."""
    d = DaemonProc(tmp_path, config="[limits]\nmax_trace_bytes_per_uid = 1200000\nmin_free_bytes = 0\n")
    try:
        d.start()
        dead = OtherUserClient(d.socket, "dead")
        dead_id = dead.welcome["run_id"]
        dead.record(0, "run_start", schema=1, pad="d" * 700_000)  # 0.7 of the uid's 1.2 MB
        dead.wait_ack(0)
        d.send_signal(signal.SIGKILL)
        d.proc.wait()  # type: ignore[union-attr]
        os.kill(dead.pid, signal.SIGKILL)
        dead.close()
        d.start()
        assert f"run {dead_id} vanished while the daemon was down" in d.log()
        again = OtherUserClient(d.socket, "again")
        again.record(0, "run_start", schema=1, pad="a" * 700_000)
        again.wait_ack(0)  # was refused: trace_limit, the dead run's 0.7 MB still charged
        again.close()
    finally:
        d.cleanup()


def _settled(d: DaemonProc, run_id: str, epochs: int) -> bool:
    """The run's resume state has its mark at `epochs` (a daemon without marks: a sample)."""
    import orjson

    try:
        state = orjson.loads((d.state / "sessions" / f"{run_id}.json").read_bytes())
    except (OSError, ValueError):
        return False
    if "mark" not in state:
        return len(_samples(d, run_id)) >= 1
    return (state["mark"] or {}).get("epochs") == epochs


def test_a_worker_its_user_stops_or_kills_costs_only_that_users_watches(tmp_path: Path) -> None:
    """The worker runs as the user, who may SIGSTOP or kill it: the daemon never waits on
    it (root's `status` answers at once meanwhile), says once that it ended, and asks a new
    worker for the run's watches."""
    with shared_tmp() as base, running_daemon(tmp_path) as d:
        home = base / "home"
        home.mkdir()
        (home / "ckpt").write_bytes(b"c" * 100)
        os.chown(home, NOBODY, NOBODY)
        c = OtherUserClient(d.socket, "stopper")
        run_id = c.welcome["run_id"]
        try:
            c.record(0, "run_start", schema=1)
            c.record(1, "watch", path=str(home), role="checkpoint")
            c.wait_ack(1)
            wait_until(lambda: str(home) in _counted(d, run_id), timeout=15.0, what="the directory counted")
            (first,) = _workers(d)
            assert os.readlink(f"/proc/{first}/cwd") == "/"  # not the daemon's: /proc/self/cwd leads nowhere
            os.kill(first, signal.SIGSTOP)
            n0 = len(_samples(d, run_id))
            wait_until(lambda: len(_samples(d, run_id)) >= n0 + 3, timeout=15.0, what="samples go on")
            assert max(_status_seconds(d) for _ in range(5)) < 1.0
            os.kill(first, signal.SIGKILL)
            wait_until(
                lambda: "the worker of uid 65534" in d.log(), timeout=15.0, what="the worker's end said"
            )
            (home / "more").write_bytes(b"m" * 50)
            os.chown(home / "more", NOBODY, NOBODY)
            wait_until(
                lambda: _counted(d, run_id).get(str(home), {}).get("bytes") == 150,
                timeout=30.0,
                what="the watch back with a new worker",
            )
            assert _workers(d) != [first] and len(_workers(d)) == 1
            assert d.log().count("the worker of uid 65534") == 1
        finally:
            c.close()


def test_a_users_runs_are_told_the_names_of_their_own_traces_only(tmp_path: Path) -> None:
    """A resumed run under the root daemon never found its restore's parent: `traces/` is 0711
    and its user cannot list it. The welcome names the uid's own traces (another user's run
    is told none of them); as that user the directory still cannot be listed, and the
    parent's save is found through the names."""
    from epochwatch.analysis.restore.scan import find_parent
    from tests.unit import restore_records as rr

    with shared_tmp() as root, running_daemon(root) as d:
        parent = OtherUserClient(d.socket, "parent")
        name = f"{parent.welcome['run_id']}.jsonl"
        recs = rr.parent_records("parent")
        for seq, rec in enumerate(recs):
            parent.record(seq, rec["type"], **{k: v for k, v in rec.items() if k not in ("type", "run_id")})
        parent.wait_ack(len(recs) - 1)
        parent.close()
        child = OtherUserClient(d.socket, "child")
        child.close()
        assert child.welcome["own_traces"] == [name]
        rootrun = RawClient(d.socket)
        try:
            assert name not in rootrun.hello("rootrun")["own_traces"]
        finally:
            rootrun.close()
        pid = os.fork()
        if pid == 0:  # as the user: nothing listed, the named parent found
            code = 1
            try:
                drop_to(NOBODY)
                try:
                    os.listdir(d.traces)
                except PermissionError:
                    here = [d.traces / n for n in child.welcome["own_traces"]]
                    found = find_parent([d.traces], rr.SHA, rr.PATH, files=here)
                    code = 0 if found is not None and found.trace.name == name else 2
            finally:
                os._exit(code)
        assert os.waitpid(pid, 0)[1] == 0


def test_a_users_rewritten_trace_costs_their_run_never_the_daemons_start(tmp_path: Path) -> None:
    """Audit: at restart a run is taken back from its trace's tail, which its user may rewrite.
    A `finding` nested 1000 deep (RecursionError in the held copy's repr) stopped the daemon
    at every start, a crash loop for every user. Now that line is refused as the socket
    refuses it; and whatever a take-back raises costs that run alone: the daemon starts,
    the other user's run is taken back."""
    d = DaemonProc(tmp_path)
    try:
        d.start()
        other = RawClient(d.socket)
        other_id = other.hello("other")["run_id"]
        other.record(0, "run_start", schema=1)
        other.record(1, "epoch", epoch=0, seconds=1.0)
        other.wait_ack(1)
        bomb = OtherUserClient(d.socket, "bomb")
        bomb_id = bomb.welcome["run_id"]
        bomb.record(0, "run_start", schema=1)
        bomb.wait_ack(0)
        d.send_signal(signal.SIGKILL)
        d.proc.wait()  # type: ignore[union-attr]
        deep = b"[" * 1000 + b"]" * 1000
        with (d.traces / f"{bomb_id}.jsonl").open("wb") as fh:  # as its user may
            fh.write(
                b'{"type":"run_start","seq":0}\n{"type":"finding","kind":"x","title":' + deep + b',"seq":1}\n'
            )
        d.start()
        runs = {r["run_id"]: r for r in _status(d)}
        assert other_id in runs and d.proc is not None and d.proc.poll() is None
        assert "RecursionError" not in d.log()
        bomb.close()
        other.close()
    finally:
        d.cleanup()
