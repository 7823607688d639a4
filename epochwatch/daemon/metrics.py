"""Prometheus metrics of the daemon: one Collector that reads the runs when it is scraped.

Why a Collector and not Gauges set on every record: a scrape reads each run's state once
(O(runs)), and nothing is spent on metrics between scrapes or when nobody scrapes. The model
is prometheus_client's ProcessCollector: the sources come in as arguments (`runs`,
`clients`), so tests feed real Sessions, or anything shaped like one, without a daemon.

There is no lock because there is no second thread: `metrics_http` serves scrapes on the
daemon's event loop, the one thread that changes sessions, so `collect()` reads live state
between two callbacks and never sees a half-applied record.

Label cardinality stays bounded: live runs (at most MAX_RUNS), plus ended runs for
KEEP_ENDED_SECONDS (at most MAX_ENDED), long enough for a scrape and an alert to see how they
ended, then dropped. GPUs only where the run holds memory, throttle reasons as one of
THROTTLE_REASONS or "other"; findings as (kind, severity) with at most MAX_FINDING_KINDS kinds
per run; how a run ended as one of END_KINDS; the job labels (JOB_LABELS) have one value per
run, so they add no series. Every metric is documented in docs/metrics.md (a test holds the
two in step).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pwd
import socket
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from epochwatch import __version__
from epochwatch.analysis.findings import SEVERITIES
from epochwatch.analysis.series import finite_number as _num
from epochwatch.daemon.lastepoch import LastEpoch
from epochwatch.identity import clean_text
from epochwatch.trace import schema

Family = GaugeMetricFamily | CounterMetricFamily

log = logging.getLogger("epochwatch.daemon")

KEEP_ENDED_SECONDS = 600.0
MAX_ENDED = 256
MAX_RUNS = 1000
MAX_FINDING_KINDS = 32
MAX_LABEL = 200
END_KINDS = (
    schema.ENDED_COMPLETED,
    schema.ENDED_RAISED,
    schema.ENDED_INTERRUPTED,
    schema.ENDED_VANISHED,
    "other",
)
# The run's place in a distributed job, from run_start's env.distributed (epochwatch/identity.py),
# empty (so absent in Prometheus) for a run no launcher placed: `job_id` (not `job`, which is
# Prometheus' own scrape-job label), `worker` ("worker:1", "rank:3") and `worker_pod` (not
# `pod`, which Kubernetes service discovery sets to the daemon's own pod).
JOB_LABELS = ("job_id", "worker", "worker_pod")
RUN_LABELS = ("run", "host", "script", "user", *JOB_LABELS)
# NVML clock-event reasons as samplers/nvml.py names them; anything else is "other".
THROTTLE_REASONS = (
    "sw_power_cap",
    "hw_slowdown",
    "sync_boost",
    "sw_thermal_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake",
    "display_clock_setting",
    "board_limit",
    "reliability",
)


@dataclass(frozen=True)
class Spec:
    """One metric family: its name as Prometheus shows it, type, help, labels after RUN_LABELS."""

    name: str
    type: str  # "gauge" or "counter" (name ends in _total)
    help: str
    labels: tuple[str, ...] = ()
    per_run: bool = True

    @property
    def label_names(self) -> list[str]:
        return [*RUN_LABELS, *self.labels] if self.per_run else list(self.labels)


SPECS: tuple[Spec, ...] = (
    Spec(
        "epochwatch_run_info",
        "gauge",
        "1 per run once its run_start arrived; labels carry the versions it runs with",
        ("epochwatch", "python", "tensorflow", "keras"),
    ),
    Spec("epochwatch_run_connected", "gauge", "1 while the run's hook is connected, else 0"),
    Spec("epochwatch_run_start_timestamp_seconds", "gauge", "when the run attached (Unix time)"),
    Spec(
        "epochwatch_run_ended_timestamp_seconds",
        "gauge",
        f"when the run ended (Unix time); kept {KEEP_ENDED_SECONDS / 60:.0f} minutes after its end",
        ("ended",),
    ),
    Spec("epochwatch_epochs_total", "counter", "epochs the run finished"),
    Spec("epochwatch_epoch_seconds", "gauge", "duration of the run's last finished epoch"),
    Spec("epochwatch_last_epoch_timestamp_seconds", "gauge", "when the last epoch ended (Unix time)"),
    Spec("epochwatch_epoch_steps", "gauge", "training steps of the run's last finished epoch"),
    Spec("epochwatch_step_seconds", "gauge", "median step time (between step starts) of the last epoch"),
    Spec(
        "epochwatch_epoch_input_wait_seconds",
        "gauge",
        "how long the training steps of the last epoch waited for their input",
    ),
    Spec(
        "epochwatch_epoch_collective_seconds",
        "gauge",
        "time the last epoch spent in steps that hold an all-reduce (distributed TF)",
    ),
    Spec(
        "epochwatch_retraces_total", "counter", "tf.function traces (new concrete functions) over the epochs"
    ),
    Spec("epochwatch_rss_bytes", "gauge", "resident memory of the run's process (latest 1 Hz sample)"),
    Spec(
        "epochwatch_memory_limit_bytes",
        "gauge",
        "memory the process may use: its cgroup limit when set, else the host's total memory",
    ),
    Spec("epochwatch_cpu_seconds_total", "counter", "CPU time (user + system) of the run's process"),
    Spec(
        "epochwatch_gpu_memory_bytes",
        "gauge",
        "GPU memory the run's process holds on a device (devices where it holds some)",
        ("device",),
    ),
    Spec("epochwatch_gpu_memory_total_bytes", "gauge", "total memory of a GPU the run uses", ("device",)),
    Spec(
        "epochwatch_gpu_utilization_ratio",
        "gauge",
        "share of time a GPU the run uses was busy (all its processes; latest 1 Hz sample)",
        ("device",),
    ),
    Spec(
        "epochwatch_gpu_throttled",
        "gauge",
        "1 for each reason a GPU the run uses slows its clocks now (none: no series)",
        ("device", "reason"),
    ),
    Spec("epochwatch_watched_bytes", "gauge", "bytes under a directory the run watches", ("dir", "role")),
    Spec("epochwatch_watched_files", "gauge", "files under a directory the run watches", ("dir", "role")),
    Spec("epochwatch_findings_total", "counter", "findings of the run", ("kind", "severity")),
    Spec("epochwatch_daemon_info", "gauge", "1; the daemon's version", ("version",), per_run=False),
    Spec(
        "epochwatch_daemon_runs",
        "gauge",
        "runs the daemon holds: connected, or detached (waiting for the hook to come back)",
        ("state",),
        per_run=False,
    ),
    Spec("epochwatch_daemon_clients", "gauge", "open connections (hooks, status, top)", per_run=False),
    Spec(
        "epochwatch_daemon_runs_ended_total",
        "counter",
        "runs ended since the daemon started, by how",
        ("ended",),
        per_run=False,
    ),
    Spec(
        "epochwatch_daemon_runs_unexported",
        "gauge",
        f"live runs left out of this scrape (over the cap of {MAX_RUNS}, or unreadable)",
        per_run=False,
    ),
)


@dataclass(frozen=True)
class RunMetrics:
    """What the metrics say about one run, read from its Session at one moment."""

    labels: tuple[str, ...]  # RUN_LABELS
    started: float
    connected: bool
    epochs: int
    retraces: int
    epoch_seconds: float | None = None
    last_epoch_t: float | None = None
    rss_bytes: float | None = None
    memory_limit_bytes: float | None = None
    cpu_seconds: float | None = None
    gpus: tuple[tuple[str, float, float | None], ...] = ()  # device, process bytes, device total
    gpu_states: tuple[tuple[str, float | None, tuple[str, ...]], ...] = ()  # device, busy, throttles
    last: LastEpoch = dataclasses.field(default_factory=LastEpoch)
    dirs: tuple[tuple[str, str, float | None, float | None], ...] = ()  # dir, role, bytes, files
    findings: tuple[tuple[str, str, int], ...] = ()  # kind, severity, count
    versions: tuple[str, str, str, str] | None = None  # epochwatch, python, tensorflow, keras
    ended: str | None = None
    ended_t: float | None = None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def job_labels(env: dict[str, Any]) -> tuple[str, str, str]:
    """JOB_LABELS of a run from its env.distributed block, "" where unknown.

    The block comes from the hook: its values are cleaned again here (printable, at most
    MAX_LABEL characters), and a worker without a name is named by its rank as identity.py does.
    """
    ident = _dict(env.get("distributed"))
    rank = ident.get("rank")
    worker = ident.get("worker")
    if not isinstance(worker, str) and isinstance(rank, int) and not isinstance(rank, bool):
        worker = f"rank:{rank}"
    pod = _dict(ident.get("kubernetes")).get("pod")
    return _label(ident.get("job_id")), _label(worker), _label(pod)


def _label(value: Any) -> str:
    """A label value: printable text of at most MAX_LABEL characters, "" for what is not text.

    Every label a client or trace brought goes through here, because prometheus_client escapes
    only `\\`, `"` and newlines: a raw ESC, CR, C1 or bidi character would reach whoever reads
    the scrape on a terminal and split lines for line-based tools.
    """
    return (clean_text(value, MAX_LABEL) or "") if isinstance(value, str) else ""


@functools.lru_cache(maxsize=256)
def user_name(uid: int) -> str:
    """A uid's name (cached: a lookup may go to LDAP), or the number when it has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


def end_kind(ended: Any) -> str:
    """How a run ended, as one of END_KINDS (a hook may send any string)."""
    return ended if ended in END_KINDS else "other"


def view_of(session: Any, host: str) -> RunMetrics:
    """A RunMetrics of a live Session (attributes as in epochwatch.daemon.session.Session)."""
    start: dict[str, Any] | None = session.run_start if isinstance(session.run_start, dict) else None
    env: dict[str, Any] = _dict((start or {}).get("env"))
    script = env.get("script") if isinstance(env.get("script"), str) else None
    script = script or session.state.script or ""
    labels = (
        _label(session.run_id),
        _label(host),
        _label(os.path.basename(str(script).rstrip("/"))),
        _label(user_name(session.uid)),
        *job_labels(env),
    )
    versions = None
    if start is not None:
        packages = _dict(env.get("packages"))
        versions = (
            _label(start.get("epochwatch")),
            _label(env.get("python")),
            _label(packages.get("tensorflow")),
            _label(packages.get("keras")),
        )
    sample = _dict(session.latest_sample)
    limit = _num(sample.get("memory_limit_bytes")) or _num(env.get("memory_limit_bytes"))
    user_cpu, system_cpu = _num(sample.get("cpu_user_seconds")), _num(sample.get("cpu_system_seconds"))
    gpus = _gpus(sample)
    return RunMetrics(
        labels=labels,
        started=_num(session.state.started) or 0.0,
        connected=session.connection is not None,
        epochs=int(session.epochs),
        retraces=int(session.retraces),
        epoch_seconds=_num(session.last_epoch_seconds),
        last_epoch_t=_num(session.last_epoch_t),
        rss_bytes=_num(sample.get("rss_bytes")),
        memory_limit_bytes=limit or _num(sample.get("sys_total_bytes")),
        cpu_seconds=None if user_cpu is None or system_cpu is None else user_cpu + system_cpu,
        gpus=gpus,
        gpu_states=_gpu_states(sample, {device for device, _, _ in gpus}),
        last=session.last_epoch_facts,
        dirs=_dirs(session.dirs),
        findings=_findings(session.findings),
        versions=versions,
        ended=session.ended,
    )


def _gpus(sample: dict[str, Any]) -> tuple[tuple[str, float, float | None], ...]:
    gpu = sample.get("gpu")
    devices = gpu.get("devices") if isinstance(gpu, dict) else None
    out = []
    for dev in devices if isinstance(devices, list) else ():
        if not isinstance(dev, dict):
            continue
        held = _num(dev.get("process_memory_bytes"))
        index = dev.get("index")
        if held and isinstance(index, int):
            out.append((str(index), held, _num(dev.get("memory_total_bytes"))))
    return tuple(out[:64])


def _gpu_states(
    sample: dict[str, Any], held: set[str]
) -> tuple[tuple[str, float | None, tuple[str, ...]], ...]:
    """(device, utilisation 0-1, throttle reasons) of the `held` devices (where the run holds
    memory: a device it does not use says nothing about the run)."""
    devices = _dict(sample.get("gpu")).get("devices")
    out = []
    for dev in devices if isinstance(devices, list) else ():
        index = dev.get("index") if isinstance(dev, dict) else None
        if not isinstance(index, int) or str(index) not in held:
            continue
        busy = _num(dev.get("utilization_pct"))
        reasons = dev.get("throttle_reasons")
        names = (
            {r if r in THROTTLE_REASONS else "other" for r in reasons if isinstance(r, str)}
            if isinstance(reasons, list)
            else set()
        )
        ratio = None if busy is None else min(max(busy / 100.0, 0.0), 1.0)
        out.append((str(index), ratio, tuple(sorted(names))))
    return tuple(out)


def _dirs(dirs: Any) -> tuple[tuple[str, str, float | None, float | None], ...]:
    if not isinstance(dirs, dict):
        return ()
    out = []
    for path, entry in dirs.items():
        if isinstance(entry, dict):
            out.append(
                (_label(path), _label(entry.get("role")), _num(entry.get("bytes")), _num(entry.get("files")))
            )
    return tuple(out[:64])


def _findings(findings: Any) -> tuple[tuple[str, str, int], ...]:
    counts: Counter[tuple[str, str]] = Counter()
    kinds: set[str] = set()
    for f in findings if isinstance(findings, list) else ():
        if not isinstance(f, dict):
            continue
        kind = _label(f.get("kind")) or "unknown"
        if kind not in kinds and len(kinds) >= MAX_FINDING_KINDS:
            kind = "other"
        kinds.add(kind)
        severity = f.get("severity")
        counts[(kind, severity if severity in SEVERITIES else "info")] += 1
    return tuple((kind, severity, n) for (kind, severity), n in sorted(counts.items()))


def ended_view(view: RunMetrics, ended: Any, t: float) -> RunMetrics:
    """The view kept after a run ended: its totals and how it ended, not its process's gauges."""
    return dataclasses.replace(
        view,
        connected=False,
        rss_bytes=None,
        memory_limit_bytes=None,
        cpu_seconds=None,
        gpus=(),
        gpu_states=(),
        dirs=(),
        ended=end_kind(ended),
        ended_t=t,
    )


class DaemonCollector:
    """The daemon's metrics (SPECS) from its live runs, its recently ended runs and itself.

    `runs()` gives the daemon's sessions, `clients()` its open connection count; the
    daemon calls `run_ended(session)` once per run end. `host` defaults to this machine's
    name; `clock` is for tests.
    """

    def __init__(
        self,
        runs: Callable[[], Iterable[Any]],
        clients: Callable[[], int],
        *,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
        keep_ended_seconds: float = KEEP_ENDED_SECONDS,
        max_ended: int = MAX_ENDED,
        max_runs: int = MAX_RUNS,
    ) -> None:
        self._runs = runs
        self._clients = clients
        self.host = host if host is not None else socket.gethostname()
        self._clock = clock
        self._keep = keep_ended_seconds
        self._max_runs = max_runs
        self._ended: deque[RunMetrics] = deque(maxlen=max_ended)
        self.ended_counts: dict[str, int] = dict.fromkeys(END_KINDS, 0)
        self._failed_logged = False

    # -- fed by the daemon ------------------------------------------------------------------

    def run_ended(self, session: Any) -> None:
        """Keep an ended run's last view for a while; count how it ended. Never raises."""
        kind = end_kind(getattr(session, "ended", None))
        self.ended_counts[kind] += 1
        try:
            self._ended.append(ended_view(view_of(session, self.host), kind, self._clock()))
        except Exception as exc:
            log.warning(
                "metrics: cannot keep run %s: %s: %s",
                getattr(session, "run_id", "?"),
                type(exc).__name__,
                exc,
            )

    # -- prometheus_client's Collector protocol ---------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """The families without samples: the registry checks names without a scrape."""
        yield from _families().values()

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        while self._ended and now - (self._ended[0].ended_t or now) > self._keep:
            self._ended.popleft()
        fam = _families()
        connected = detached = exported = 0
        for session in list(self._runs()):
            if getattr(session, "finished", False):
                continue
            if getattr(session, "connection", None) is not None:
                connected += 1
            else:
                detached += 1
            if exported >= self._max_runs:
                continue
            try:
                view = view_of(session, self.host)
            except Exception as exc:  # a bug must cost one run's metrics, never the scrape
                self._log_failure(exc)
                continue
            _add_run(fam, view)
            exported += 1
        for view in self._ended:
            _add_run(fam, view)
        fam["epochwatch_daemon_info"].add_metric([__version__], 1)
        fam["epochwatch_daemon_runs"].add_metric(["connected"], connected)
        fam["epochwatch_daemon_runs"].add_metric(["detached"], detached)
        fam["epochwatch_daemon_clients"].add_metric([], self._clients())
        for kind, n in self.ended_counts.items():
            fam["epochwatch_daemon_runs_ended_total"].add_metric([kind], n)
        fam["epochwatch_daemon_runs_unexported"].add_metric([], connected + detached - exported)
        yield from fam.values()

    def _log_failure(self, exc: Exception) -> None:
        if not self._failed_logged:  # once: a scrape every 15 s must not flood the journal
            self._failed_logged = True
            log.error("metrics: a run left out of the scrape: %s: %s", type(exc).__name__, exc)


def _families() -> dict[str, Family]:
    """Each spec's family, by its name (a counter's family drops the `_total`, as Prometheus does)."""
    kinds: dict[str, type[Family]] = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}
    return {s.name: kinds[s.type](s.name, s.help, labels=s.label_names) for s in SPECS}


def _add_run(fam: dict[str, Family], v: RunMetrics) -> None:
    run = list(v.labels)

    def put(name: str, value: float | None, *extra: str) -> None:
        if value is not None:
            fam[name].add_metric([*run, *extra], value)

    if v.versions is not None:
        put("epochwatch_run_info", 1, *v.versions)
    put("epochwatch_run_connected", 1 if v.connected else 0)
    put("epochwatch_run_start_timestamp_seconds", v.started)
    if v.ended is not None and v.ended_t is not None:
        put("epochwatch_run_ended_timestamp_seconds", v.ended_t, v.ended)
    put("epochwatch_epochs_total", v.epochs)
    put("epochwatch_epoch_seconds", v.epoch_seconds)
    put("epochwatch_last_epoch_timestamp_seconds", v.last_epoch_t)
    put("epochwatch_epoch_steps", v.last.steps)
    put("epochwatch_step_seconds", v.last.step_seconds)
    put("epochwatch_epoch_input_wait_seconds", v.last.input_wait_seconds)
    put("epochwatch_epoch_collective_seconds", v.last.collective_seconds)
    put("epochwatch_retraces_total", v.retraces)
    put("epochwatch_rss_bytes", v.rss_bytes)
    put("epochwatch_memory_limit_bytes", v.memory_limit_bytes)
    put("epochwatch_cpu_seconds_total", v.cpu_seconds)
    for device, held, total in v.gpus:
        put("epochwatch_gpu_memory_bytes", held, device)
        put("epochwatch_gpu_memory_total_bytes", total, device)
    for device, busy, reasons in v.gpu_states:
        put("epochwatch_gpu_utilization_ratio", busy, device)
        for reason in reasons:
            put("epochwatch_gpu_throttled", 1, device, reason)
    for path, role, size, files in v.dirs:
        put("epochwatch_watched_bytes", size, path, role)
        put("epochwatch_watched_files", files, path, role)
    for kind, severity, n in v.findings:
        put("epochwatch_findings_total", n, kind, severity)


def registry_for(collector: DaemonCollector) -> CollectorRegistry:
    """A registry of its own (not the global one): the daemon's collector, process_* and python_info."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
