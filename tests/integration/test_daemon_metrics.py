"""Prometheus metrics of a real daemon process: a run attached over the real socket, scraped
over loopback with urllib and read with prometheus-client's parser; off by default; a port
that cannot be used stops the daemon at start with one line and exit 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client.samples import Sample

from epochwatch.daemon.metrics import user_name
from tests.integration.daemon_harness import (
    PY,
    DaemonProc,
    RawClient,
    base_env,
    start_fake_run,
    wait_for_line,
    wait_until,
)
from tests.support import metric_samples


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MetricsDaemon(DaemonProc):
    """DaemonProc with extra command-line arguments."""

    def __init__(self, root: Path, args: list[str], **kwargs: object) -> None:
        super().__init__(root, **kwargs)  # type: ignore[arg-type]
        self.args = args

    def start(self, wait: bool = True) -> MetricsDaemon:
        cmd = [PY, "-m", "epochwatch", "daemon", "--socket", str(self.socket), "--state-dir", str(self.state)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, *self.args], stdout=log, stderr=log, env=self.env, cwd=self.root
            )
        if wait:
            self.wait_ready()
        return self


def scrape(port: int) -> dict[str, list[Sample]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        return metric_samples(resp.read().decode())


def value(samples: dict[str, list[Sample]], name: str, **labels: str) -> float | None:
    found = [s for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, found
    return found[0].value if found else None


def listening_ports(pid: int) -> list[int]:
    return [
        c.laddr.port for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN
    ]


def test_a_run_attached_over_the_socket_is_scraped_over_loopback(tmp_path: Path) -> None:
    port = free_port()
    watched = tmp_path / "ckpt"
    watched.mkdir()
    (watched / "model.weights.h5").write_bytes(b"w" * 1000)
    # the file asks for another port: the flag wins; SIGHUP keeps the running one
    d = MetricsDaemon(tmp_path, ["--metrics-port", str(port)], config=f"metrics_port = {free_port()}\n")
    client: RawClient | None = None
    fake: subprocess.Popen[str] | None = None
    try:
        d.start()
        d.wait_log(rf"serving Prometheus metrics at http://127\.0\.0\.1:{port}/metrics")
        client = RawClient(d.socket)
        assert client.hello("metrics-run")["run_id"] == "metrics-run"
        env = {"script": "/srv/jobs/train_model.py", "python": "3.11.4", "packages": {"tensorflow": "2.16.1"}}
        env["distributed"] = {"job_id": "slurm-77.0", "rank": 1, "kubernetes": {"pod": "train-1"}}
        client.record(0, "run_start", schema=1, epochwatch="0.1.0", mode="embedded", env=env)
        client.record(1, "watch", path=str(watched), role="checkpoint")
        for n, (seconds, new) in enumerate([(2.0, 4), (1.5, 0), (1.25, 1)]):
            client.record(
                n + 2,
                "epoch",
                epoch=n,
                seconds=seconds,
                retraces={"new": new},
                steps=100,
                collective={"seconds": seconds / 2, "calls": 100},
            )
        client.record(
            5, "finding", kind="slowdown", severity="warning", title="epochs slower", target="epoch_time"
        )
        client.wait_ack(5)
        run = {"run": "metrics-run", "host": socket.gethostname(), "script": "train_model.py"}
        run["user"] = user_name(os.getuid())
        run |= {"job_id": "slurm-77.0", "worker": "rank:1", "worker_pod": "train-1"}  # its place in the job

        # the 1 Hz sampler (of this test process: the client's pid) and the watcher fill in
        def sampled() -> bool:
            got = scrape(port)
            return bool(value(got, "epochwatch_rss_bytes", **run)) and (
                value(got, "epochwatch_watched_bytes", **run, dir=str(watched), role="checkpoint") == 1000
            )

        wait_until(sampled, timeout=10, what="a sample and the watched directory in the metrics")
        got = scrape(port)
        info = got["epochwatch_run_info"]
        assert len(info) == 1 and info[0].labels == {
            **run,
            "epochwatch": "0.1.0",
            "python": "3.11.4",
            "tensorflow": "2.16.1",
            "keras": "",
        }
        assert value(got, "epochwatch_epochs_total", **run) == 3
        assert value(got, "epochwatch_epoch_seconds", **run) == 1.25
        assert value(got, "epochwatch_epoch_steps", **run) == 100
        assert value(got, "epochwatch_epoch_collective_seconds", **run) == 0.625
        assert value(got, "epochwatch_retraces_total", **run) == 5
        assert value(got, "epochwatch_findings_total", **run, kind="slowdown", severity="warning") == 1
        assert value(got, "epochwatch_run_connected", **run) == 1
        assert (value(got, "epochwatch_rss_bytes", **run) or 0) > 1 << 20
        assert (value(got, "epochwatch_memory_limit_bytes", **run) or 0) > (
            value(got, "epochwatch_rss_bytes", **run) or 0
        )
        assert (value(got, "epochwatch_cpu_seconds_total", **run) or 0) > 0
        assert value(got, "epochwatch_watched_files", **run, dir=str(watched), role="checkpoint") == 1
        assert value(got, "epochwatch_daemon_runs", state="connected") == 1
        assert (value(got, "epochwatch_daemon_clients") or 0) >= 1
        assert (value(got, "process_resident_memory_bytes") or 0) > 0

        # a config reload that moves the endpoint: kept, said, and still served
        assert d.config_path is not None
        d.config_path.write_text(f'metrics_port = {free_port()}\nmetrics_address = "127.0.0.2"\n')
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"config: metrics_address only change at a restart; keeping the running values")
        assert value(scrape(port), "epochwatch_epochs_total", **run) == 3

        # the run ends; a second run's process is killed: both stay exported, with how they ended
        client.record(6, "run_end", ended="completed", epochs=3)
        client.send({"op": "bye"})
        d.wait_log(r"run metrics-run ended: completed")
        fake = start_fake_run(tmp_path, d.socket, epochs=1, period=0.2, end="hang")
        wait_for_line(fake, "EPOCH 0")
        fake.kill()
        fake.wait()
        d.wait_log(r"run fake-run vanished")
        got = scrape(port)
        assert value(got, "epochwatch_run_ended_timestamp_seconds", **run, ended="completed")
        assert value(got, "epochwatch_epochs_total", **run) == 3
        assert value(got, "epochwatch_run_connected", **run) == 0
        assert value(got, "epochwatch_rss_bytes", **run) is None  # the process is gone
        assert value(got, "epochwatch_run_ended_timestamp_seconds", run="fake-run", ended="vanished")
        assert value(got, "epochwatch_daemon_runs_ended_total", ended="completed") == 1
        assert value(got, "epochwatch_daemon_runs_ended_total", ended="vanished") == 1
        assert value(got, "epochwatch_daemon_runs", state="connected") == 0

        # garbage on the port costs nothing
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"\x16\x03\x01 not http\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
        assert err.value.code == 404

        assert d.stop() == 0  # SIGTERM: the port closes with the daemon
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert "Traceback" not in d.log()
    finally:
        if client is not None:
            client.close()
        if fake is not None and fake.poll() is None:
            fake.kill()
            fake.communicate()
        d.cleanup()


def test_metrics_are_off_by_default(tmp_path: Path) -> None:
    d = DaemonProc(tmp_path)
    try:
        d.start()
        assert d.proc is not None
        assert listening_ports(d.proc.pid) == []
        assert "Prometheus" not in d.log()
        assert d.stop() == 0
    finally:
        d.cleanup()


def _start_fails(tmp_path: Path, *args: str) -> str:
    sock = tmp_path / "d.sock"
    cmd = [PY, "-m", "epochwatch", "daemon", "--socket", str(sock), "--state-dir", str(tmp_path / "s"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=base_env(), timeout=30)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("epochwatch daemon: "), proc.stderr
    assert not sock.exists()  # nothing left behind
    return lines[0]


def test_a_port_in_use_stops_the_daemon_at_start_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _start_fails(tmp_path, "--metrics-port", str(port))
    assert line == f"epochwatch daemon: cannot serve metrics on 127.0.0.1:{port}: Address already in use"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--metrics-port", "http"], "--metrics-port: expected a port number"),
        (["--metrics-port", "70000"], "--metrics-port: expected a port number"),
        (
            ["--metrics-port", "9464", "--metrics-address", "203.0.113.7"],
            "cannot serve metrics on 203.0.113.7:9464",
        ),
    ],
)
def test_bad_metrics_arguments_are_one_line_errors(tmp_path: Path, args: list[str], says: str) -> None:
    assert says in _start_fails(tmp_path, *args)


def test_with_a_token_file_only_scrapes_that_carry_it_see_the_runs(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    port = free_port()
    config = f'metrics_port = {port}\nmetrics_token_file = "{token_file}"\n'
    d = MetricsDaemon(tmp_path, [], config=config).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert refused.value.code == 401 and b"epochwatch_" not in refused.value.read()
        wrong = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer s3cret-tokeN"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(wrong, timeout=5)
        assert refused.value.code == 401
        right = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer s3cret-token"}
        )
        with urllib.request.urlopen(right, timeout=5) as resp:
            assert resp.status == 200 and b"epochwatch_" in resp.read()
    finally:
        d.stop()
        d.cleanup()
    missing = f'metrics_port = {free_port()}\nmetrics_token_file = "{tmp_path / "nope"}"\n'
    (tmp_path / "bad.toml").write_text(missing)
    assert "metrics_token_file" in _start_fails(tmp_path, "--config", str(tmp_path / "bad.toml"))
