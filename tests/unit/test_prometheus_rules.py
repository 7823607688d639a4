"""The shipped job rules (epochwatch/share/prometheus-alerts.yml, group `epochwatch-jobs`) under
`promtool test rules`, on series the real collector exports.

A two-host job of two workers (TF_CONFIG read by epochwatch/identity.py, as a worker's hook
does) is played minute by minute: each worker's daemon Session takes the epoch records a
synchronous job writes (every step waits in the all-reduce for the slowest worker), each
host's DaemonCollector is scraped, and the scrapes become promtool's input series, with the
`instance` and `job` labels Prometheus adds. Three jobs: balanced (noise only), one with a
straggler from minute 20, one whose all-reduce grows on both workers from minute 20. Each
alert must fire where it should and nowhere else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from epochwatch.daemon.config import Sampling
from epochwatch.daemon.metrics import DaemonCollector
from epochwatch.daemon.runsamplers import NvmlHub
from epochwatch.daemon.session import Session
from epochwatch.daemon.store import SessionState, TraceFile, prepare_dirs
from epochwatch.identity import identity
from tests.support import REPO

RULES = REPO / "epochwatch" / "share" / "prometheus-alerts.yml"
PEER = {"pid": 1, "uid": 0, "gid": 0}
HOSTS = ("gpu-a", "gpu-b")
MINUTES = 90  # one epoch per worker per minute, scraped once a minute
STEPS = 500
OWN = 0.1  # a worker's own part of a step (compute, input), seconds
COMM = 0.02  # the all-reduce itself, per step
STRAGGLER = "EpochwatchStragglingWorker"
COMM_ALERT = "EpochwatchCommunicationGrowing"

# (own seconds per step of worker 0, of worker 1, all-reduce per step) at minute m
Shape = Callable[[int], tuple[float, float, float]]


def _noise(m: int, w: int) -> float:
    """Deterministic +-4% noise, different per worker and minute."""
    return 1 + 0.04 * (((m * 7 + w * 13) % 9) - 4) / 4


def balanced(m: int) -> tuple[float, float, float]:
    """Never perfectly even: worker 1 is always 8% slower, the network jitters +-12%."""
    return OWN * _noise(m, 0), OWN * 1.08 * _noise(m, 1), COMM * (1 + 3 * (_noise(m, 2) - 1))


def straggler(m: int) -> tuple[float, float, float]:
    slow = 1.6 if m >= 20 else 1.0  # worker 1's input got slower at minute 20
    return OWN * _noise(m, 0), OWN * slow * _noise(m, 1), COMM * _noise(m, 2)


def comm_growth(m: int) -> tuple[float, float, float]:
    grow = 1 + 2 * min(max(m - 20, 0), 40) / 40  # 3x from minute 20 to 60
    return OWN * _noise(m, 0), OWN * _noise(m, 1), COMM * grow * _noise(m, 2)


@pytest.fixture
def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed here (`make promtool`: Debian's prometheus package)")
    return tool


def worker_sessions(state_dir: Path, starts: list[dict[str, Any]]) -> list[Session]:
    """One daemon Session per worker (worker i on HOSTS[i]), after its run_start arrived."""
    traces, _ = prepare_dirs(state_dir)
    made = []
    for index, start in enumerate(starts):
        run_id = f"train-{index}"
        trace = TraceFile.create(traces, run_id, uid=os.getuid(), mode=0o640)
        state = SessionState(run_id, "h", os.getuid(), os.getgid(), 0, 0.0, 1000.0, script="train.py")
        s = Session(state, trace, sampling=Sampling(full_rate_seconds=1e9), online=False, hub=NvmlHub())
        s.accept(0, start, PEER)
        made.append(s)
    return made


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Session]]:
    """Two workers of one TF job in pods, one per host, as their hooks start (identity.py)."""
    cluster = {"worker": [f"{h}:12345" for h in HOSTS]}
    starts = []
    for index in range(len(HOSTS)):
        env = {
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "KUBERNETES_SERVICE_HOST": "10.0.0.1",
            "HOSTNAME": f"train-worker-{index}",
        }
        starts.append({"type": "run_start", "env": {"script": "train.py", "distributed": identity(env)}})
    made = worker_sessions(tmp_path / "state", starts)
    yield made
    for s in made:
        s.trace.close()


def _epoch(m: int, own: float, others_own: float, comm: float) -> dict[str, Any]:
    """A synchronous worker's epoch: its step lasts as long as the slowest worker's."""
    step = max(own, others_own) + comm
    return {
        "type": "epoch",
        "epoch": m,
        "seconds": STEPS * step + 2.0,
        "steps": STEPS,
        "step_seconds": {"min": step * 0.9, "median": step, "p90": step * 1.1, "max": step * 2},
        "collective": {
            "seconds": STEPS * (step - own),  # its part of the step plus its wait for the slowest
            "calls": STEPS,
            "strategy": "CollectiveAllReduceStrategy",
            "replicas": 2,
        },
        "input_wait_seconds": STEPS * own * 0.2,
    }


def _scrape(collector: DaemonCollector, names: set[str]) -> Iterator[tuple[str, dict[str, str], float]]:
    registry = CollectorRegistry()
    registry.register(collector)
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name in names:
                yield sample.name, dict(sample.labels), sample.value


def _selector(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if v)
    return f"{name}{{{inner}}}"


def shaped(shape: Shape) -> list[list[dict[str, Any]]]:
    """Each worker's epoch records, one per minute, of a job shaped so."""
    out: list[list[dict[str, Any]]] = [[], []]
    for m in range(MINUTES + 1):
        owns = shape(m)
        for w in range(2):
            out[w].append(_epoch(m, owns[w], owns[1 - w], owns[2]))
    return out


def play(workers: list[Session], epochs: list[list[dict[str, Any]]]) -> list[dict[str, str]]:
    """promtool input_series of a job whose workers each finish an epoch a minute (`epochs[w]`,
    in order), sent to their daemons and scraped once a minute, as Prometheus would."""
    names = set(re.findall(r"\bepochwatch_[a-z_]+", RULES.read_text())) | {"epochwatch_run_info"}
    collectors = [
        DaemonCollector(lambda s=s: [s], lambda: 1, host=h) for s, h in zip(workers, HOSTS, strict=True)
    ]
    series: dict[str, list[str]] = {}
    for m in range(min(len(e) for e in epochs)):
        for w, s in enumerate(workers):
            s.accept(m + 1, epochs[w][m], PEER)
        for host, collector in zip(HOSTS, collectors, strict=True):
            target = {"instance": f"{host}:9464", "job": "epochwatch"}
            for name, labels, value in _scrape(collector, names):
                values = series.setdefault(_selector(name, {**labels, **target}), ["_"] * m)
                values.append(repr(value))
    return [{"series": k, "values": " ".join(v)} for k, v in series.items()]


def alert_labels(s: Session, host: str) -> dict[str, str]:
    """The labels an alert on one worker carries: the run's, as scraped, and the target's."""
    collector = DaemonCollector(lambda: [s], lambda: 1, host=host)
    [(_, labels, _)] = list(_scrape(collector, {"epochwatch_epoch_seconds"}))
    labels.update(instance=f"{host}:9464", job="epochwatch", severity="warning")
    return {k: v for k, v in labels.items() if v}


def run_promtool(promtool: str, tmp_path: Path, inputs: list[dict[str, str]], tests: list[Any]) -> None:
    """promtool test rules on the shipped rules. Annotations are left out of the copy it
    loads: promtool compares them verbatim, and `promtool check rules` (test_daemon_metrics)
    checks their templates."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (the dev extra brings it)")
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(json.dumps(doc))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": inputs, **t} for t in tests],
    }
    (tmp_path / "test.yml").write_text(json.dumps(test))
    proc = subprocess.run(
        [promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]


def _expect(at: str, alert: str, *fired: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": f} for f in fired]}


def test_a_balanced_two_host_job_fires_neither_job_alert(
    promtool: str, workers: list[Session], tmp_path: Path
) -> None:
    inputs = play(workers, shaped(balanced))
    job_id = workers[0].run_start["env"]["distributed"]["job_id"]  # type: ignore[index]
    run_promtool(
        promtool,
        tmp_path,
        inputs,
        [
            {
                "alert_rule_test": [
                    _expect(at, a) for at in ("30m", "60m", "90m") for a in (STRAGGLER, COMM_ALERT)
                ],
                "promql_expr_test": [
                    {
                        "expr": "epochwatch:job_hosts",
                        "eval_time": "60m",
                        "exp_samples": [{"labels": f'epochwatch:job_hosts{{job_id="{job_id}"}}', "value": 2}],
                    },
                    {
                        "expr": "epochwatch:job_workers",
                        "eval_time": "60m",
                        "exp_samples": [
                            {"labels": f'epochwatch:job_workers{{job_id="{job_id}"}}', "value": 2}
                        ],
                    },
                ],
            }
        ],
    )


def test_a_straggler_on_one_host_is_named_and_only_it(
    promtool: str, workers: list[Session], tmp_path: Path
) -> None:
    inputs = play(workers, shaped(straggler))
    slow = alert_labels(workers[1], HOSTS[1])
    assert slow["worker"] == "worker:1" and slow["worker_pod"] == "train-worker-1" and slow["host"] == "gpu-b"
    alerts = [
        _expect("30m", STRAGGLER),  # slow since minute 20: not yet for 15 minutes
        _expect("40m", STRAGGLER, {**slow, "alertname": STRAGGLER}),
        _expect("90m", STRAGGLER, {**slow, "alertname": STRAGGLER}),
        _expect("90m", COMM_ALERT),  # the others' wait for it is not the network's doing
    ]
    run_promtool(promtool, tmp_path, inputs, [{"alert_rule_test": alerts}])


def test_communication_growing_on_both_hosts_fires_for_the_job(
    promtool: str, workers: list[Session], tmp_path: Path
) -> None:
    inputs = play(workers, shaped(comm_growth))
    job_id = workers[0].run_start["env"]["distributed"]["job_id"]  # type: ignore[index]
    fired = {"job_id": job_id, "severity": "warning", "alertname": COMM_ALERT}
    alerts = [
        _expect("40m", COMM_ALERT),  # growing, but not for 30 minutes yet
        _expect("90m", COMM_ALERT, fired),
        _expect("90m", STRAGGLER),  # every worker waits longer: no one of them is to blame
    ]
    run_promtool(promtool, tmp_path, inputs, [{"alert_rule_test": alerts}])
