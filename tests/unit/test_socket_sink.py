"""SocketSink against a small in-process daemon on a real socket: never blocking, replay
after a lost connection, the fallback to the embedded file, bounded close."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from epochwatch.trace import schema
from epochwatch.trace.reader import iter_records
from epochwatch.trace.sink import FileSink, open_sink
from epochwatch.trace.socket_sink import SocketSink


class FakeDaemon:
    """Speaks the daemon's side of the protocol: welcome, ack, resume; can stop reading or go away."""

    def __init__(
        self,
        path: Path,
        *,
        read: bool = True,
        forget: bool = False,
        refuse: str | None = None,
        drop_records: bool = False,
        answer: bool = True,
    ) -> None:
        self.path = path
        self.read = read
        self.drop_records = drop_records  # a daemon whose disk is full: error, close, on every record
        self.answer = answer  # False: accept and read, never say a word (a stalled daemon)
        self.forget = forget  # answer every resume with unknown_run
        self.refuse = refuse
        self.records: list[tuple[int, dict[str, Any]]] = []
        self.hellos: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        self._stop_r, self._stop_w = os.pipe()

    def start(self) -> FakeDaemon:
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._listener.bind(str(self.path))
        self._listener.listen(16)
        self._thread = threading.Thread(target=self._serve, name="fake-daemon")
        self._thread.start()
        return self

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        assert self._thread is not None
        self._thread.join(5)
        os.read(self._stop_r, 16)
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def close(self) -> None:
        os.close(self._stop_r)
        os.close(self._stop_w)

    @property
    def next_seq(self) -> int:
        return self.records[-1][0] + 1 if self.records else 0

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, "listen")
        sel.register(self._stop_r, selectors.EVENT_READ, "stop")
        bufs: dict[socket.socket, bytes] = {}
        try:
            while True:
                for key, _ in sel.select(5):
                    if key.data == "stop":
                        return
                    if key.data == "listen":
                        conn, _ = self._listener.accept()
                        bufs[conn] = b""
                        sel.register(conn, selectors.EVENT_READ, "conn")
                        continue
                    conn = key.fileobj  # type: ignore[assignment]
                    data = conn.recv(65536)
                    if not data:
                        sel.unregister(conn)
                        conn.close()
                        del bufs[conn]
                        continue
                    bufs[conn] += data
                    while b"\n" in bufs[conn]:
                        line, _, bufs[conn] = bufs[conn].partition(b"\n")
                        self._message(conn, orjson.loads(line), sel, bufs)
                        if conn not in bufs:
                            break
        finally:
            for conn in list(bufs):
                conn.close()
            sel.close()

    def _message(
        self, conn: socket.socket, msg: dict[str, Any], sel: selectors.BaseSelector, bufs: dict[Any, bytes]
    ) -> None:
        if not self.answer:
            return
        if msg["op"] == "hello":
            self.hellos.append(msg)
            if self.refuse or (self.forget and msg.get("token")):
                code = self.refuse or "unknown_run"
                conn.sendall(orjson.dumps({"op": "error", "code": code, "error": f"no: {code}"}) + b"\n")
                return
            resumed = bool(msg.get("token"))
            welcome = {
                "op": "welcome",
                "protocol": 1,
                "run_id": "daemon-" + msg["run_id"],
                "token": "tok",
                "next_seq": self.next_seq if resumed else 0,
                "resumed": resumed,
                "trace": "/srv/x.jsonl",
            }
            if not resumed:
                self.records.clear()
            conn.sendall(orjson.dumps(welcome) + b"\n")
            if not self.read:
                sel.unregister(conn)  # from now on nothing is read: the client's buffers fill up
        elif msg["op"] == "rec" and self.drop_records:
            error = {
                "op": "error",
                "code": "write",
                "error": "cannot write the trace (No space left on device)",
            }
            conn.sendall(orjson.dumps(error) + b"\n")
            sel.unregister(conn)
            conn.close()
            del bufs[conn]
        elif msg["op"] == "rec":
            if msg["seq"] >= self.next_seq:
                self.records.append((msg["seq"], msg["record"]))
            conn.sendall(orjson.dumps({"op": "ack", "seq": msg["seq"]}) + b"\n")

    def types(self) -> list[str]:
        return [r["type"] for _, r in self.records]


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ews", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake(sock_dir: Path) -> Iterator[FakeDaemon]:
    daemon = FakeDaemon(sock_dir / "d.sock").start()
    yield daemon
    with contextlib.suppress(Exception):
        daemon.stop()
    daemon.close()


def rec(type_: str, **fields: Any) -> dict[str, Any]:
    return schema.record(type_, "r1", **fields)


def wait_until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.01)


def test_records_arrive_in_order_and_close_flushes(fake: FakeDaemon, tmp_path: Path) -> None:
    sink = SocketSink(str(fake.path), "r1", tmp_path)
    wait_until(lambda: "daemon-r1" in sink.description)  # the hello happens on the sender thread
    assert "daemon at" in sink.description
    thread = next(t for t in threading.enumerate() if t.name == "epochwatch-sink")
    assert thread.daemon
    sink.write(rec("run_start", schema=1))
    for n in range(50):
        sink.write(rec("epoch", epoch=n))
    sink.write(rec("run_end", ended="completed"))
    sink.close()
    assert not thread.is_alive()
    assert [s for s, _ in fake.records] == list(range(52))
    assert fake.types()[0] == "run_start" and fake.types()[-1] == "run_end"
    assert not (tmp_path / "r1.jsonl").exists()


def test_write_never_blocks_when_the_daemon_stops_reading(
    sock_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = FakeDaemon(sock_dir / "d.sock", read=False).start()
    try:
        sink = SocketSink(str(daemon.path), "r1", tmp_path, max_pending_bytes=2 << 20, close_timeout=0.5)
        payload = "x" * 10_000
        slowest = 0.0
        t0 = time.monotonic()
        sink.write(rec("run_start", schema=1))
        for n in range(3000):  # 30 MB: far more than the socket buffers and the queue bound
            a = time.perf_counter()
            sink.write(rec("epoch", epoch=n, pad=payload))
            slowest = max(slowest, time.perf_counter() - a)
        assert time.monotonic() - t0 < 5.0
        assert slowest < 0.05
        assert sink.dropped > 0
        t1 = time.monotonic()
        sink.close()
        assert time.monotonic() - t1 < 3.0
        # What the daemon never took went to the embedded file, behind the run's header.
        local = list(iter_records(tmp_path / "r1.jsonl"))
        assert local[0]["type"] == "run_start" and local[1]["type"] == "notice"
        assert local[-1]["epoch"] == 2999
        assert capsys.readouterr().err.count("epochwatch:") == 1
    finally:
        daemon.stop()
        daemon.close()


def test_reconnects_and_replays_what_the_daemon_did_not_get(fake: FakeDaemon, tmp_path: Path) -> None:
    sink = SocketSink(str(fake.path), "r1", tmp_path, grace=10.0)
    sink.write(rec("run_start", schema=1))
    for n in range(5):
        sink.write(rec("epoch", epoch=n))
    wait_until(lambda: fake.next_seq == 6)
    fake.stop()
    for n in range(5, 10):
        sink.write(rec("epoch", epoch=n))  # buffered while the daemon is away
    time.sleep(0.3)
    fake.start()
    sink.write(rec("run_end", ended="completed"))
    sink.close()
    assert [s for s, _ in fake.records] == list(range(12))
    assert [r["epoch"] for _, r in fake.records if r["type"] == "epoch"] == list(range(10))
    assert fake.hellos[-1]["token"] == "tok"
    assert sink.reconnects >= 1 and sink.remote_detection


def test_falls_back_to_the_embedded_file_after_the_grace_period(
    fake: FakeDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = SocketSink(str(fake.path), "r1", tmp_path, grace=0.3)
    sink.write(rec("run_start", schema=1))
    sink.write(rec("epoch", epoch=0))
    wait_until(lambda: fake.next_seq == 2)
    fake.stop()
    sink.write(rec("epoch", epoch=1))
    wait_until(lambda: not sink.remote_detection, timeout=5.0)
    sink.write(rec("epoch", epoch=2))
    sink.write(rec("run_end", ended="completed"))
    sink.close()
    local = list(iter_records(tmp_path / "r1.jsonl"))
    assert [r["type"] for r in local] == ["run_start", "notice", "epoch", "epoch", "run_end"]
    assert "daemon-r1" in local[1]["message"]
    assert [r["epoch"] for r in local if r["type"] == "epoch"] == [1, 2]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did not come back within 0.3 s" in err


def test_a_daemon_that_forgot_the_run_gets_a_new_one_with_its_header(
    fake: FakeDaemon, tmp_path: Path
) -> None:
    sink = SocketSink(str(fake.path), "r1", tmp_path, grace=10.0)
    sink.write(rec("run_start", schema=1))
    sink.write(rec("epoch", epoch=0))
    wait_until(lambda: fake.next_seq == 2)
    fake.stop()
    fake.forget = True
    sink.write(rec("epoch", epoch=1))
    fake.start()
    wait_until(lambda: any(h.get("token") for h in fake.hellos))
    fake.forget = False  # the new hello (without a token) is welcomed as a new run
    sink.close()
    assert fake.types() == ["run_start", "epoch"]
    assert [s for s, _ in fake.records] == [0, 2]


def test_close_with_the_daemon_gone_saves_the_tail_locally(fake: FakeDaemon, tmp_path: Path) -> None:
    sink = SocketSink(str(fake.path), "r1", tmp_path, grace=60.0, close_timeout=0.3)
    sink.write(rec("run_start", schema=1))
    wait_until(lambda: fake.next_seq == 1)
    fake.stop()
    sink.write(rec("run_end", ended="completed"))
    t0 = time.monotonic()
    sink.close()
    assert time.monotonic() - t0 < 2.0
    assert [r["type"] for r in iter_records(tmp_path / "r1.jsonl")] == ["run_start", "notice", "run_end"]


def test_open_sink_picks_the_daemon_or_the_file(
    sock_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"EPOCHWATCH_DIR": str(tmp_path), "EPOCHWATCH_SOCKET": str(sock_dir / "none.sock")}
    sink = open_sink("r1", env)
    assert isinstance(sink, FileSink)
    sink.close()
    assert capsys.readouterr().err == ""

    refusing = FakeDaemon(sock_dir / "refuse.sock", refuse="limit").start()
    try:
        sink = open_sink("r2", {**env, "EPOCHWATCH_SOCKET": str(refusing.path)})
        sink.write(schema.record("run_start", "r2", schema=1, mode=getattr(sink, "mode", "embedded")))
        sink.close()
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no: limit" in err
        # The run is traced all the same, in the embedded file, and says so.
        [start] = iter_records(tmp_path / "r2.jsonl")
        assert start["mode"] == "embedded"
    finally:
        refusing.stop()
        refusing.close()

    working = FakeDaemon(sock_dir / "ok.sock").start()
    try:
        sink = open_sink(
            "r3", {**env, "EPOCHWATCH_SOCKET": str(working.path), "EPOCHWATCH_DAEMON_GRACE": "5"}
        )
        assert isinstance(sink, SocketSink) and sink.grace == 5.0
        sink.close()
    finally:
        working.stop()
        working.close()


def test_a_daemon_that_keeps_dropping_the_run_is_retried_with_backoff(
    sock_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon that cannot write (full disk) drops every connection at the first record:
    the sink must not reconnect in a tight loop (thousands a second), and says it once."""
    daemon = FakeDaemon(sock_dir / "d.sock", drop_records=True).start()
    try:
        sink = SocketSink(str(daemon.path), "r1", tmp_path, grace=60.0, close_timeout=0.2)
        sink.write(rec("run_start", schema=1))
        for n in range(5):
            sink.write(rec("epoch", epoch=n))
        time.sleep(2.0)
        hellos = len(daemon.hellos)
        sink.close()
    finally:
        daemon.stop()
        daemon.close()
    # 0.05 s doubling to a 2 s cap, with jitter: at most about 7 connections in 2 s.
    assert 2 <= hellos <= 10, hellos
    err = capsys.readouterr().err
    assert err.count("No space left on device") == 1, err


def test_a_stalled_daemon_never_holds_up_the_run(
    sock_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon that accepts but never answers: opening the sink and writing are immediate;
    the records end in the embedded trace once the hello times out."""
    daemon = FakeDaemon(sock_dir / "d.sock", answer=False).start()
    try:
        env = {"EPOCHWATCH_DIR": str(tmp_path), "EPOCHWATCH_SOCKET": str(daemon.path)}
        t0 = time.perf_counter()
        sink = open_sink("r1", env)
        sink.write(rec("run_start", schema=1, mode=getattr(sink, "mode", "embedded")))
        for n in range(3):
            sink.write(rec("epoch", epoch=n))
        started = time.perf_counter() - t0
        wait_until(lambda: (tmp_path / "r1.jsonl").exists(), timeout=8.0)
        sink.write(rec("run_end", ended="completed"))
        sink.close()
    finally:
        daemon.stop()
        daemon.close()
    assert started < 0.5, started
    types = [r["type"] for r in iter_records(tmp_path / "r1.jsonl")]
    assert types == ["run_start", "epoch", "epoch", "epoch", "run_end"]
    assert capsys.readouterr().err.count("\n") == 1


def test_a_daemon_that_never_takes_the_run_back_means_the_embedded_trace(
    sock_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Welcomed every time, dropped at every record: within the grace period, the run goes
    to the embedded trace instead of cycling for ever with the records only in memory."""
    daemon = FakeDaemon(sock_dir / "d.sock", drop_records=True).start()
    try:
        sink = SocketSink(str(daemon.path), "r1", tmp_path, grace=0.5, close_timeout=0.2)
        sink.write(rec("run_start", schema=1))
        sink.write(rec("epoch", epoch=0))
        wait_until(lambda: not sink.remote_detection, timeout=8.0)
        sink.write(rec("run_end", ended="completed"))
        sink.close()
    finally:
        daemon.stop()
        daemon.close()
    types = [r["type"] for r in iter_records(tmp_path / "r1.jsonl")]
    assert types[0] == "run_start" and types[-2:] == ["epoch", "run_end"], types
    err = capsys.readouterr().err
    assert err.count("No space left on device") == 1 and "within 0.5 s" in err, err


def test_new_records_do_not_cut_the_backoff_short(sock_dir: Path, tmp_path: Path) -> None:
    """Issue 22: on a full disk the reconnect rate was the epoch rate (276 reconnects in
    3.5 s with 10 ms epochs), since every record woke the backoff's wait."""
    daemon = FakeDaemon(sock_dir / "d.sock", drop_records=True).start()
    try:
        sink = SocketSink(str(daemon.path), "r1", tmp_path, grace=60.0, close_timeout=0.2)
        sink.write(rec("run_start", schema=1))
        for n in range(200):  # 10 ms epochs for 2 s
            sink.write(rec("epoch", epoch=n))
            time.sleep(0.01)
        hellos = len(daemon.hellos)
        sink.close()
    finally:
        daemon.stop()
        daemon.close()
    assert 2 <= hellos <= 10, hellos


def _listen_as_nobody(path: Path, seconds: float, out: int) -> None:
    """In a forked child: uid 65534 listens at `path` and reports every byte a client sent."""
    from tests.integration.other_user import NOBODY, drop_to

    drop_to(NOBODY)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    os.write(out, b"ready\n")
    got = connections = 0
    conns: list[socket.socket] = []
    deadline = time.monotonic() + seconds
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    while (left := deadline - time.monotonic()) > 0:
        for key, _ in sel.select(left):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                connections += 1
                conns.append(conn)
                sel.register(conn, selectors.EVENT_READ)
                continue
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            data = sock.recv(65536)
            got += len(data)
            if not data:
                sel.unregister(sock)
    os.write(out, orjson.dumps({"bytes": got, "connections": connections}) + b"\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_socket_flipped_to_another_users_listener_gets_nothing(
    sock_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22: the hook checked the path it resolved, then connected to the path as given,
    and never checked again on reconnect: a symlink flipped between the root daemon's socket
    and another user's listener delivered runs to that user. The kernel's word on the
    connected peer (SO_PEERCRED) is checked on every connect, before a byte is sent."""
    from tests.integration.other_user import NOBODY

    sock_dir.chmod(0o755)
    theirs = sock_dir / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    link = sock_dir / "link.sock"
    daemon = FakeDaemon(sock_dir / "d.sock", drop_records=True).start()  # root's, drops the run
    link.symlink_to(daemon.path)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            _listen_as_nobody(theirs / "fake.sock", 4.0, w)
        finally:
            os._exit(0)
    os.close(w)
    report = os.fdopen(r, "rb")
    try:
        assert report.readline() == b"ready\n"
        sink = SocketSink(str(link), "r1", tmp_path, grace=60.0, close_timeout=0.2)
        wait_until(lambda: len(daemon.hellos) >= 1)
        flipped = sock_dir / "flip.sock"
        flipped.symlink_to(theirs / "fake.sock")
        flipped.replace(link)  # from now on the path leads to uid 65534's listener
        sink.write(rec("run_start", schema=1, argv=["train.py", "--secret"]))
        sink.write(rec("epoch", epoch=0))
        wait_until(lambda: not sink.remote_detection, timeout=5.0)
        sink.close()
        seen = orjson.loads(report.readline())
    finally:
        report.close()
        os.waitpid(pid, 0)
        daemon.stop()
        daemon.close()
    assert seen["connections"] >= 1  # it did connect (the check needs a connected socket) ...
    assert seen["bytes"] == 0  # ... and said nothing to uid 65534
    assert "not trusted" in capsys.readouterr().err
    types = [r["type"] for r in iter_records(tmp_path / "r1.jsonl")]
    assert types[:1] == ["run_start"] and "epoch" in types
