"""Prometheus metrics without a daemon: the collector over real Sessions, the HTTP answer, the
server on a loop, the config and flags, and the shipped docs, dashboard and alert rules kept
in step with what is exported."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.samples import Sample

from epochwatch.cli.base import UsageError
from epochwatch.cli.daemon import _port
from epochwatch.daemon import metrics_http
from epochwatch.daemon.config import RESTART_ONLY, ConfigError, load_config, parse_config
from epochwatch.daemon.metrics import (
    MAX_FINDING_KINDS,
    MAX_LABEL,
    RUN_LABELS,
    SPECS,
    DaemonCollector,
    registry_for,
    user_name,
)
from epochwatch.daemon.metrics_http import MetricsServer, answer, bind_problem
from epochwatch.daemon.runsamplers import NvmlHub
from epochwatch.daemon.session import Session
from epochwatch.daemon.store import SessionState, TraceFile, prepare_dirs
from epochwatch.daemon.takeback import read_tail, take_back
from epochwatch.identity import identity
from epochwatch.trace.reader import iter_records
from tests.support import REPO
from tests.support import metric_samples as parse

GIB = 1 << 30
PEER = {"pid": 1, "uid": 0, "gid": 0}
DOCS = REPO / "docs"
SHARE = REPO / "epochwatch" / "share"  # the shipped unit, drop-in, rules and dashboard


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def make_session(tmp_path: Path) -> Iterator[Any]:
    traces, _ = prepare_dirs(tmp_path)
    made: list[Session] = []

    def make(run_id: str = "r", script: str = "") -> Session:
        trace = TraceFile.create(traces, run_id, uid=os.getuid(), mode=0o640)
        state = SessionState(trace.run_id, "h", os.getuid(), os.getgid(), 0, 0.0, 1000.0, script=script)
        s = Session(state, trace, sampling=_sampling(), online=False, hub=NvmlHub())
        made.append(s)
        return s

    yield make
    for s in made:
        s.trace.close()


def _sampling() -> Any:
    from epochwatch.daemon.config import Sampling

    return Sampling(full_rate_seconds=1e9)


def scrape(collector: DaemonCollector) -> dict[str, list[Sample]]:
    registry = CollectorRegistry()
    registry.register(collector)
    return parse(generate_latest(registry).decode())


def one(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    found = [s for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {found} in {samples.get(name)}"
    return found[0].value


def a_training_run(s: Session) -> None:
    s.accept(
        0,
        {
            "type": "run_start",
            "epochwatch": "0.1.0",
            "env": {
                "script": "/home/ana/proj/train.py",
                "python": "3.11.4",
                "packages": {"tensorflow": "2.16.1", "keras": "3.3.3"},
            },
        },
        PEER,
    )
    for n, (seconds, new) in enumerate([(2.5, 3), (1.5, 0), (1.25, 2)]):
        epoch = {"type": "epoch", "epoch": n, "seconds": seconds, "retraces": {"new": new}, "steps": 100}
        s.accept(n + 1, {**epoch, "collective": {"seconds": seconds / 4, "calls": 100}}, PEER)
    s.accept(4, {"type": "finding", "kind": "slowdown", "severity": "warning", "target": "epoch_time"}, PEER)
    s.write_finding({"kind": "retrace_storm", "severity": "critical", "target": "train_step"})
    s.write_finding({"kind": "retrace_storm", "severity": "critical", "target": "eval_step"})
    s.latest_sample = {
        "t": 1.0,
        "rss_bytes": 3 * GIB,
        "memory_limit_bytes": 8 * GIB,
        "sys_total_bytes": 64 * GIB,
        "cpu_user_seconds": 10.5,
        "cpu_system_seconds": 1.5,
        "gpu": {
            "devices": [
                {"index": 0, "process_memory_bytes": 5 * GIB, "memory_total_bytes": 80 * GIB},
                {"index": 1, "process_memory_bytes": 0, "memory_total_bytes": 80 * GIB},
            ]
        },
    }
    s.dirs = {"/ckpt": {"bytes": 12345, "files": 3, "role": "checkpoint"}}


def test_a_live_run_exports_every_per_run_metric(make_session: Any) -> None:
    s = make_session("train-1", script="/usr/bin/whatever")
    a_training_run(s)
    s.connection = object()
    got = scrape(DaemonCollector(lambda: [s], lambda: 4, host="gpu-7"))
    run = {"run": "train-1", "host": "gpu-7", "script": "train.py", "user": user_name(os.getuid())}
    info = got["epochwatch_run_info"][0]
    assert info.value == 1 and info.labels == {
        **run,
        "job_id": "",  # not a distributed run: empty, which Prometheus stores as no label
        "worker": "",
        "worker_pod": "",
        "epochwatch": "0.1.0",
        "python": "3.11.4",
        "tensorflow": "2.16.1",
        "keras": "3.3.3",
    }
    assert one(got, "epochwatch_run_connected", **run) == 1
    assert one(got, "epochwatch_run_start_timestamp_seconds", **run) == 1000.0
    assert "epochwatch_run_ended_timestamp_seconds" not in got
    assert one(got, "epochwatch_epochs_total", **run) == 3
    assert one(got, "epochwatch_epoch_seconds", **run) == 1.25
    assert one(got, "epochwatch_last_epoch_timestamp_seconds", **run) > 1e9
    assert one(got, "epochwatch_retraces_total", **run) == 5
    assert one(got, "epochwatch_rss_bytes", **run) == 3 * GIB
    assert one(got, "epochwatch_memory_limit_bytes", **run) == 8 * GIB
    assert one(got, "epochwatch_cpu_seconds_total", **run) == 12.0
    assert one(got, "epochwatch_gpu_memory_bytes", **run, device="0") == 5 * GIB
    assert one(got, "epochwatch_gpu_memory_total_bytes", **run, device="0") == 80 * GIB
    assert len(got["epochwatch_gpu_memory_bytes"]) == 1  # no memory held on GPU 1: no series
    assert one(got, "epochwatch_watched_bytes", **run, dir="/ckpt", role="checkpoint") == 12345
    assert one(got, "epochwatch_watched_files", **run, dir="/ckpt", role="checkpoint") == 3
    assert one(got, "epochwatch_findings_total", **run, kind="slowdown", severity="warning") == 1
    assert one(got, "epochwatch_findings_total", **run, kind="retrace_storm", severity="critical") == 2
    assert one(got, "epochwatch_daemon_runs", state="connected") == 1
    assert one(got, "epochwatch_daemon_runs", state="detached") == 0
    assert one(got, "epochwatch_daemon_clients") == 4
    assert one(got, "epochwatch_daemon_info")
    assert one(got, "epochwatch_daemon_runs_ended_total", ended="vanished") == 0
    assert one(got, "epochwatch_daemon_runs_unexported") == 0


def test_a_restarted_daemon_reads_the_counters_back_from_the_trace(make_session: Any) -> None:
    s = make_session("again")
    a_training_run(s)
    s.trace.close()
    state = SessionState("again", "h", os.getuid(), os.getgid(), 0, 0.0, 1000.0)
    back = Session(state, TraceFile.reopen(s.trace_path), sampling=_sampling(), online=False, hub=NvmlHub())
    try:
        take_back(back, read_tail(back.state, back.trace_path.parent))
        got = scrape(DaemonCollector(lambda: [back], lambda: 0, host="h"))
    finally:
        back.trace.close()
    assert one(got, "epochwatch_epochs_total") == 3 and one(got, "epochwatch_retraces_total") == 5
    assert one(got, "epochwatch_epoch_seconds") == 1.25
    assert one(got, "epochwatch_epoch_steps") == 100  # the last epoch's facts come back too
    assert one(got, "epochwatch_epoch_collective_seconds") == 1.25 / 4
    assert one(got, "epochwatch_findings_total", kind="retrace_storm", severity="critical") == 2


def test_before_run_start_the_script_comes_from_the_command_line_and_no_info(make_session: Any) -> None:
    s = make_session("early", script="/srv/jobs/fit_model.py")
    got = scrape(DaemonCollector(lambda: [s], lambda: 0, host="h"))
    assert "epochwatch_run_info" not in got
    labels = got["epochwatch_epochs_total"][0].labels
    assert labels["script"] == "fit_model.py" and labels["run"] == "early"
    assert one(got, "epochwatch_run_connected", run="early") == 0
    assert one(got, "epochwatch_daemon_runs", state="detached") == 1
    # no sample yet: no process gauges rather than zeros
    for name in ("epochwatch_rss_bytes", "epochwatch_memory_limit_bytes", "epochwatch_epoch_seconds"):
        assert name not in got


def test_memory_limit_falls_back_to_the_hosts_memory(make_session: Any) -> None:
    s = make_session()
    s.latest_sample = {"rss_bytes": 1, "sys_total_bytes": 64 * GIB}
    got = scrape(DaemonCollector(lambda: [s], lambda: 0, host="h"))
    assert one(got, "epochwatch_memory_limit_bytes") == 64 * GIB


def test_whatever_a_hook_sends_a_scrape_works_and_labels_stay_bounded(make_session: Any) -> None:
    s = make_session()
    s.accept(0, {"type": "run_start", "env": "not a dict", "epochwatch": 7}, PEER)
    s.accept(1, {"type": "epoch", "seconds": "slow", "retraces": {"new": "many"}}, PEER)
    s.accept(2, {"type": "epoch", "seconds": float("nan"), "retraces": [1]}, PEER)
    for n in range(MAX_FINDING_KINDS + 10):
        s.accept(3 + n, {"type": "finding", "kind": f"k{n}", "severity": "apocalyptic", "target": n}, PEER)
    s.latest_sample = {
        "rss_bytes": "big",
        "gpu": {"devices": [None, {"index": "0"}, 5]},
        "cpu_user_seconds": 1,
    }
    s.dirs = {"/x": "not a dict", "/y": {"bytes": True, "role": 5}}
    got = scrape(DaemonCollector(lambda: [s], lambda: 0, host="h"))
    assert one(got, "epochwatch_epochs_total") == 2 and one(got, "epochwatch_retraces_total") == 0
    assert "epochwatch_epoch_seconds" not in got and "epochwatch_rss_bytes" not in got
    assert "epochwatch_cpu_seconds_total" not in got  # user time without system time: not a total
    findings = got["epochwatch_findings_total"]
    assert {f.labels["severity"] for f in findings} == {"info"}
    assert (
        len(findings) == MAX_FINDING_KINDS + 1 and one(got, "epochwatch_findings_total", kind="other") == 10
    )
    assert one(got, "epochwatch_run_info", epochwatch="", python="") == 1
    assert "epochwatch_watched_bytes" not in got and "epochwatch_gpu_memory_bytes" not in got


def _worker_trace(path: Path) -> None:
    """A trace as rank 1 of a two-node Slurm job in a pod writes it: run_start with the identity
    epochwatch/identity.py reads, then epochs with step time, input wait and all-reduce time."""
    env = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}
    env |= {"POD_NAME": "bert-worker-1", "POD_NAMESPACE": "ml"}
    records: list[dict[str, Any]] = [
        {"type": "run_start", "run_id": "w1", "env": {"script": "train.py", "distributed": identity(env)}}
    ]
    for n in range(3):
        records.append(
            {
                "type": "epoch",
                "run_id": "w1",
                "epoch": n,
                "seconds": 61.0 + n,
                "steps": 500,
                "step_seconds": {"min": 0.1, "median": 0.12 + n / 100, "p90": 0.15, "max": 0.4},
                "input_wait_seconds": 4.5 + n,
                "input_wait_source": "tf.data",
                "collective": {"seconds": 10.0 + n, "calls": 500, "strategy": "X", "replicas": 2},
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_a_job_worker_exports_its_job_labels_step_input_allreduce_and_gpu_series(
    make_session: Any, tmp_path: Path
) -> None:
    _worker_trace(tmp_path / "w1.jsonl")
    s = make_session("w1")
    for seq, rec in enumerate(iter_records(tmp_path / "w1.jsonl")):
        s.accept(seq, rec, PEER)
    device = {"index": 0, "process_memory_bytes": GIB, "memory_total_bytes": 80 * GIB}
    s.latest_sample = {
        "gpu": {
            "devices": [
                {**device, "utilization_pct": 87.0, "throttle_reasons": ["sw_power_cap", "unknown_0x800"]},
                {**device, "index": 1, "utilization_pct": 140, "throttle_reasons": []},
                {**device, "index": 2, "process_memory_bytes": 0, "utilization_pct": 99.0},  # not the run's
            ]
        }
    }
    got = scrape(DaemonCollector(lambda: [s], lambda: 0, host="node-7"))
    job = {
        "run": "w1",
        "host": "node-7",
        "job_id": "slurm-4242.0",
        "worker": "rank:1",
        "worker_pod": "bert-worker-1",
    }
    for family in got.values():  # every per-run series carries the job's labels
        for sample in family:
            if "run" in sample.labels:
                assert {k: sample.labels[k] for k in job} == job, sample
    assert one(got, "epochwatch_epoch_steps", **job) == 500
    assert one(got, "epochwatch_step_seconds", **job) == pytest.approx(0.14)
    assert one(got, "epochwatch_epoch_input_wait_seconds", **job) == 6.5
    assert one(got, "epochwatch_epoch_collective_seconds", **job) == 12.0
    assert one(got, "epochwatch_epoch_seconds", **job) == 63.0
    assert one(got, "epochwatch_gpu_utilization_ratio", device="0") == pytest.approx(0.87)
    assert one(got, "epochwatch_gpu_utilization_ratio", device="1") == 1.0  # clamped
    assert {(x.labels["device"], x.labels["reason"]) for x in got["epochwatch_gpu_throttled"]} == {
        ("0", "sw_power_cap"),
        ("0", "other"),
    }
    assert all(x.value == 1 for x in got["epochwatch_gpu_throttled"])
    assert len(got["epochwatch_gpu_utilization_ratio"]) == 2  # device 2 holds nothing of the run's


def test_job_labels_a_hook_sends_are_cleaned_and_bounded(make_session: Any) -> None:
    s = make_session("evil")
    ident = {
        "job_id": 'j"}\nfake_metric{x="1' + "x" * 500,
        "worker": ["not", "text"],
        "rank": True,
        "kubernetes": {"pod": "\x1b[31mred\x00"},
    }
    s.accept(0, {"type": "run_start", "env": {"distributed": ident}}, PEER)
    s.accept(
        1, {"type": "epoch", "steps": -3, "step_seconds": {"median": float("inf")}, "collective": 5}, PEER
    )
    s.accept(2, {"type": "epoch", "input_wait_seconds": True, "collective": {"seconds": "1"}}, PEER)
    text = generate_latest(registry_for(DaemonCollector(lambda: [s], lambda: 0, host="h"))).decode()
    got = parse(text)  # the text format stays parseable: quotes and newlines are escaped
    labels = got["epochwatch_epochs_total"][0].labels
    assert labels["job_id"].startswith('j"}') and "\n" not in labels["job_id"]
    assert len(labels["job_id"]) == MAX_LABEL
    assert labels["worker"] == "" and labels["worker_pod"] == "[31mred"
    assert "fake_metric" not in got
    for name in ("epoch_steps", "step_seconds", "epoch_input_wait_seconds", "epoch_collective_seconds"):
        assert f"epochwatch_{name}" not in got  # nothing usable was sent: no series, not a 0


def test_every_label_a_run_brings_is_cleaned_of_control_and_bidi_characters(make_session: Any) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J\rRTL\u202e\x85\x9b31m\u2028"
    s = make_session("evil")
    s.accept(
        0,
        {
            "type": "run_start",
            "epochwatch": "1" + evil,
            "env": {"script": "/x/train" + evil + ".py", "python": evil, "packages": {"keras": evil}},
        },
        PEER,
    )
    s.accept(1, {"type": "finding", "kind": "k" + evil, "severity": "warning", "target": "t"}, PEER)
    s.dirs = {"/data" + evil: {"bytes": 1, "files": 1, "role": "r" + evil}}
    collector = DaemonCollector(lambda: [s], lambda: 0, host="h" + evil)
    text = generate_latest(registry_for(collector)).decode()
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2028\u2029]", text)
    got = parse(text)
    assert one(got, "epochwatch_findings_total", kind="k]0;pwned[2JRTL31m") == 1
    assert got["epochwatch_run_info"][0].labels["script"] == "train]0;pwned[2JRTL31m.py"
    assert got["epochwatch_watched_bytes"][0].labels["dir"] == "/data]0;pwned[2JRTL31m"


def test_a_broken_session_costs_its_own_metrics_only(make_session: Any) -> None:
    good = make_session("good")

    class Broken:
        finished = False
        connection = None

        @property
        def run_id(self) -> str:
            raise RuntimeError("boom")

    got = scrape(DaemonCollector(lambda: [Broken(), good], lambda: 0, host="h"))
    assert [s.labels["run"] for s in got["epochwatch_epochs_total"]] == ["good"]


def test_ended_runs_are_kept_for_a_while_then_dropped(make_session: Any) -> None:
    clock = Clock()
    live: list[Session] = []
    collector = DaemonCollector(lambda: live, lambda: 0, host="h", clock=clock, keep_ended_seconds=600)
    done, gone, odd = make_session("done"), make_session("gone"), make_session("odd")
    a_training_run(done)
    done.accept(5, {"type": "run_end", "ended": "completed"}, PEER)
    gone.write_vanished()
    odd.accept(0, {"type": "run_end", "ended": "exploded"}, PEER)
    for s in (done, gone, odd):
        s.finished = True
        collector.run_ended(s)
    clock.t += 300
    got = scrape(collector)
    assert one(got, "epochwatch_run_ended_timestamp_seconds", run="done", ended="completed") == 1_000_000.0
    assert one(got, "epochwatch_run_ended_timestamp_seconds", run="gone", ended="vanished") == 1_000_000.0
    assert one(got, "epochwatch_run_ended_timestamp_seconds", run="odd", ended="other") == 1_000_000.0
    assert one(got, "epochwatch_epochs_total", run="done") == 3
    assert one(got, "epochwatch_findings_total", run="done", kind="slowdown") == 1
    assert one(got, "epochwatch_run_connected", run="done") == 0
    # the process is gone: no gauges of it
    assert "epochwatch_rss_bytes" not in got and "epochwatch_watched_bytes" not in got
    for kind, n in (("completed", 1), ("vanished", 1), ("other", 1), ("raised", 0)):
        assert one(got, "epochwatch_daemon_runs_ended_total", ended=kind) == n
    clock.t += 301
    got = scrape(collector)
    assert "epochwatch_epochs_total" not in got and "epochwatch_run_ended_timestamp_seconds" not in got
    assert one(got, "epochwatch_daemon_runs_ended_total", ended="completed") == 1  # the count stays


def test_runs_exported_are_capped(make_session: Any) -> None:
    runs = [make_session(f"r{n}") for n in range(5)]
    collector = DaemonCollector(lambda: runs, lambda: 0, host="h", max_runs=3, max_ended=2)
    got = scrape(collector)
    assert len(got["epochwatch_epochs_total"]) == 3
    assert one(got, "epochwatch_daemon_runs_unexported") == 2
    assert one(got, "epochwatch_daemon_runs", state="detached") == 5
    for s in runs:
        collector.run_ended(s)
    runs.clear()
    assert len(scrape(collector)["epochwatch_epochs_total"]) == 2


def test_a_scrape_of_many_runs_is_quick(make_session: Any) -> None:
    base = make_session("base")
    a_training_run(base)
    runs = [base] * 500  # the cost is per run read, not per distinct file
    registry = registry_for(DaemonCollector(lambda: runs, lambda: 0, host="h"))
    generate_latest(registry)
    t0 = time.perf_counter()
    text = generate_latest(registry)
    elapsed = time.perf_counter() - t0
    assert text.count(b"epochwatch_epochs_total{") == 500
    assert elapsed < 2.0, f"{elapsed:.3f} s for 500 runs"  # ~25 ms on a 2-core VM


def test_registry_adds_process_and_platform_metrics() -> None:
    got = parse(generate_latest(registry_for(DaemonCollector(list, lambda: 0, host="h"))).decode())
    assert one(got, "process_resident_memory_bytes") > 0 and "python_info" in got
    assert one(got, "epochwatch_daemon_runs", state="connected") == 0


def test_describe_names_every_family_without_samples() -> None:
    collector = DaemonCollector(list, lambda: 0, host="h")
    described = list(collector.describe())
    assert [m.name for m in described] == [s.name.removesuffix("_total") for s in SPECS]
    assert all(not m.samples for m in described)
    registry = CollectorRegistry()
    registry.register(collector)
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(DaemonCollector(list, lambda: 0, host="h"))


# -- HTTP -------------------------------------------------------------------------------------


@pytest.fixture
def registry() -> CollectorRegistry:
    return registry_for(DaemonCollector(list, lambda: 2, host="h"))


def test_answer_serves_text_openmetrics_gzip_and_filters(registry: CollectorRegistry) -> None:
    status, headers, body = answer(registry, b"GET /metrics HTTP/1.1\r\nHost: x")
    assert status == "200 OK" and dict(headers)["Content-Type"].startswith("text/plain; version=0.0.4")
    assert one(parse(body.decode()), "epochwatch_daemon_clients") == 2
    status, headers, body = answer(
        registry, b"GET / HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n"
    )
    assert dict(headers)["Content-Type"].startswith("application/openmetrics-text") and body.endswith(
        b"# EOF\n"
    )
    status, headers, body = answer(
        registry, b"GET /metrics?name[]=epochwatch_daemon_clients HTTP/1.1\r\nAccept-Encoding: gzip, br"
    )
    assert dict(headers)["Content-Encoding"] == "gzip"
    assert list(parse(gzip.decompress(body).decode())) == ["epochwatch_daemon_clients"]


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /metrics HTTP/1.1", "405 Method Not Allowed"),
        (b"GET /admin HTTP/1.1", "404 Not Found"),
        (b"GET /metrics", "400 Bad Request"),
        (b"\x00\xff garbage", "400 Bad Request"),
        (b"GET /metrics HTTP/1.1\r\nno colon here", "400 Bad Request"),
    ],
)
def test_answer_refuses_what_is_not_a_scrape(registry: CollectorRegistry, head: bytes, status: str) -> None:
    assert answer(registry, head)[0] == status


def test_a_failing_collector_is_a_500_not_a_crash() -> None:
    class Failing:
        def collect(self) -> Any:
            raise RuntimeError("bug")

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Failing())
    assert answer(registry, b"GET /metrics HTTP/1.1")[0] == "500 Internal Server Error"


def test_bind_problem_is_one_line_with_a_systemd_hint() -> None:
    import errno

    text = bind_problem("127.0.0.1", 9464, OSError(errno.EADDRINUSE, "Address already in use"))
    assert text == "cannot serve metrics on 127.0.0.1:9464: Address already in use"
    text = bind_problem("::1", 9464, OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol"))
    assert text.startswith("cannot serve metrics on [::1]:9464") and "epochwatch-metrics.conf" in text


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    out = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return out


def test_server_on_a_loop_answers_and_survives_bad_clients(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metrics_http, "READ_TIMEOUT", 0.3)

    async def main() -> None:
        server = MetricsServer(registry, "127.0.0.1", 0)
        await server.start()
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        try:
            assert server.url == f"http://127.0.0.1:{port}/metrics"
            ok = await _exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            head, _, body = ok.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in head
            assert f"Content-Length: {len(body)}".encode() in head
            assert one(parse(body.decode()), "epochwatch_daemon_clients") == 2
            headed = await _exchange(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
            assert headed.startswith(b"HTTP/1.1 200 OK") and headed.endswith(b"\r\n\r\n")
            assert (await _exchange(port, b"BREW /pot HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405")
            assert await _exchange(port, b"A" * (metrics_http.MAX_HEAD + 10)) == b""  # oversized: closed
            t0 = time.monotonic()
            assert await _exchange(port, b"GET /metrics HTTP/1.1\r\n") == b""  # never finishes its head
            assert time.monotonic() - t0 < 3
            # a client that stalls is cut off at shutdown, not waited for
            stalled = await asyncio.open_connection("127.0.0.1", port)
            await asyncio.sleep(0.05)
            assert len(server._active) == 1
        finally:
            server.close()
        await asyncio.sleep(0.05)
        assert not server._active
        assert await stalled[0].read() == b""
        stalled[1].close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)

    asyncio.run(main())


def test_a_port_in_use_raises_oserror_at_start(registry: CollectorRegistry) -> None:
    async def main() -> None:
        first = MetricsServer(registry, "127.0.0.1", 0)
        await first.start()
        port = int(first.url.rsplit(":", 1)[1].split("/")[0])
        try:
            with pytest.raises(OSError):
                await MetricsServer(registry, "127.0.0.1", port).start()
        finally:
            first.close()

    asyncio.run(main())


# -- config and flags -------------------------------------------------------------------------


def test_metrics_settings_in_the_file_flags_on_top(tmp_path: Path) -> None:
    assert parse_config("").metrics_port == 0 and parse_config("").metrics_address == "127.0.0.1"
    path = tmp_path / "d.toml"
    path.write_text('metrics_port = 9464\nmetrics_address = "0.0.0.0"\n')
    cfg = load_config(str(path))
    assert (cfg.metrics_port, cfg.metrics_address) == (9464, "0.0.0.0")
    cfg = load_config(str(path), metrics_port=9500, metrics_address="::1")
    assert (cfg.metrics_port, cfg.metrics_address) == (9500, "::1")
    assert load_config(str(path), metrics_port=0).metrics_port == 0  # the flag turns it off
    assert {"metrics_port", "metrics_address"} <= set(RESTART_ONLY)  # SIGHUP keeps the port


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics_port = 70000", "metrics_port must be 0 (off) to 65535"),
        ('metrics_port = "9464"', "expected an integer"),
        ("metrics_port = -1", "must not be negative"),
        ('metrics_address = " "', "metrics_address must not be empty"),
    ],
)
def test_bad_metrics_settings_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "d.toml")
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["abc", "-5", "65536", "94 64", ""])
def test_bad_metrics_port_flag_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--metrics-port: expected a port number"):
        _port(text)
    assert _port("9464") == 9464 and _port("0") == 0 and _port(None) is None


# -- shipped docs, dashboard, alert rules, systemd drop-in ------------------------------------

EXPORTED = {s.name for s in SPECS} | {
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "python_info",
}
NAME = re.compile(r"\b((?:epochwatch|process)_[a-z_]+|python_info)\b")


def test_docs_document_every_metric_and_no_other() -> None:
    text = (DOCS / "metrics.md").read_text()
    rows = {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", text, re.M)}
    assert {s.name for s in SPECS} <= rows, {s.name for s in SPECS} - rows
    assert set(NAME.findall(text)) <= EXPORTED, set(NAME.findall(text)) - EXPORTED
    intro = text[text.index("## Metrics") : text.index("| metric |")]
    for label in RUN_LABELS:  # the run's labels, said once above the table
        assert f"`{label}`" in intro, label
    for spec in SPECS:  # each row says the type and the labels
        row = next(line for line in text.splitlines() if line.startswith(f"| `{spec.name}` |"))
        assert f"| {spec.type} |" in row, row
        assert ("| run's" in row) == spec.per_run, row
        for label in spec.labels:
            assert f"`{label}`" in row, (spec.name, label)


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def test_dashboard_parses_and_queries_only_exported_metrics() -> None:
    board = json.loads((SHARE / "grafana-dashboard.json").read_text())
    assert board["title"] and board["uid"] and board["panels"]
    exprs = list(_exprs(board))
    assert len(exprs) >= len(board["panels"]) - 2  # rows aside, every panel queries something
    used = {name for e in exprs for name in NAME.findall(e)}
    assert used and used <= EXPORTED, used - EXPORTED
    assert {"epochwatch_epoch_seconds", "epochwatch_rss_bytes", "epochwatch_findings_total"} <= used


def test_dashboard_has_a_job_selector_and_step_time_per_worker_of_a_job() -> None:
    board = json.loads((SHARE / "grafana-dashboard.json").read_text())
    (job,) = [v for v in board["templating"]["list"] if v["name"] == "job"]
    assert "job_id" in job["query"]["query"]
    panels = [p for p in board["panels"] if any('job_id=~"$job"' in t["expr"] for t in p.get("targets", []))]
    assert any("step time per worker" in p["title"].lower() for p in panels), [p["title"] for p in panels]
    for panel in panels:  # one line per worker of the job
        assert all("{{worker}}" in t["legendFormat"] for t in panel["targets"]), panel["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


ALERTS = SHARE / "prometheus-alerts.yml"


def test_alert_rules_query_only_exported_metrics() -> None:
    text = ALERTS.read_text()
    assert len(re.findall(r"^\s+- alert: ", text, re.M)) >= 4
    used = {
        name for line in text.splitlines() if not line.lstrip().startswith("#") for name in NAME.findall(line)
    }
    assert used <= EXPORTED, used - EXPORTED
    for needed in ("epochwatch_findings_total", "epochwatch_epoch_seconds", "epochwatch_rss_bytes"):
        assert needed in used
    assert 'ended="vanished"' in text


def test_alert_rules_yaml_structure() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (not a dependency of epochwatch)")
    doc = yaml.safe_load(ALERTS.read_text())
    assert set(doc) == {"groups"}
    names = set()
    recorded: set[str] = set()
    for group in doc["groups"]:
        assert isinstance(group["name"], str) and group["rules"]
        for rule in group["rules"]:
            if "record" in rule:  # recording rules: level:metric:operations, each recorded once
                assert set(rule) <= {"record", "expr", "labels"}
                assert re.fullmatch(r"epochwatch:[a-z_]+(:[a-z_]+)?", rule["record"])
                assert rule["record"] not in recorded and rule["expr"].strip()
                recorded.add(rule["record"])
                continue
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
            assert rule["alert"] not in names and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", rule["alert"])
            names.add(rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert rule["labels"]["severity"] in ("info", "warning", "critical")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_alert_rules_pass_promtool() -> None:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed here (apt-get install prometheus to run this check)")
    proc = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_systemd_drop_in_lets_the_daemon_listen_on_loopback_only(tmp_path: Path) -> None:
    settings: dict[str, list[str]] = {}
    for line in (SHARE / "epochwatch-metrics.conf").read_text().splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    assert settings["PrivateNetwork"] == ["no"]
    families = settings["RestrictAddressFamilies"][-1].split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(families)
    assert settings["IPAddressDeny"] == ["any"] and "localhost" in settings["IPAddressAllow"][0]
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd to run this check)")
    # verify the unit with the drop-in in place (ExecStart must exist: this checkout's entry point)
    entry = Path(sys.executable).parent / "epochwatch"
    unit = (SHARE / "epochwatch.service").read_text().replace("/usr/local/bin/epochwatch", str(entry))
    (tmp_path / "epochwatch.service").write_text(unit)
    (tmp_path / "epochwatch.service.d").mkdir()
    shutil.copy(SHARE / "epochwatch-metrics.conf", tmp_path / "epochwatch.service.d" / "metrics.conf")
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}
    proc = subprocess.run(
        [tool, "verify", str(tmp_path / "epochwatch.service")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    problems = [line for line in proc.stderr.splitlines() if "epochwatch" in line]
    assert proc.returncode == 0 and not problems, proc.stderr


def test_slow_local_clients_cannot_block_a_scrape(registry: CollectorRegistry) -> None:
    """Issue 22: any 8 local connections that said nothing blocked every scrape for their
    read timeout (the cap and the timeout came before the token check)."""

    async def main() -> None:
        server = MetricsServer(registry, "127.0.0.1", 0, token="s3cret")
        await server.start()
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(40)]
        try:
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            out = await _exchange(port, b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n")
            assert out.startswith(b"HTTP/1.1 200 OK"), out[:80]
            assert time.monotonic() - t0 < 1.0
            assert len(server._active) <= metrics_http.CONCURRENT
        finally:
            server.close()
            for _, writer in idle:
                writer.close()

    asyncio.run(main())
