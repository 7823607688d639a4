"""One run as `top` shows it: the newest numbers, a short history of epoch times, findings.

Folded record by record from a trace (or from the daemon's status), so following a run
costs memory in a few dozen numbers, whatever its length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from epochwatch.analysis.ledger import Ledger
from epochwatch.analysis.retrace_count import RetraceCount
from epochwatch.analysis.series import finite_number as _num

HISTORY = 120  # epoch times kept for the sparkline


@dataclass
class RunState:
    run_id: str
    pid: int | None = None
    script: str | None = None
    hostname: str | None = None
    started: float | None = None
    epoch: int | None = None
    epochs: int = 0
    planned: int | None = None
    last_epoch_t: float | None = None
    epoch_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY))
    loss: float | None = None
    rss: float | None = None
    memory_limit: float | None = None
    gpu: float | None = None
    retrace_count: RetraceCount = field(default_factory=RetraceCount)
    retraces_said: int | None = None  # the daemon's count (status), whole when the trace was read in part
    partial: bool = False  # a large trace read from near its end: counts start there
    findings: Ledger = field(default_factory=Ledger)
    ended: str | None = None  # as run_end says; "gone" when the process is no longer there
    gone: bool = False  # no run_end, and its process is not there any more
    attached: bool | None = None  # daemon: the hook is connected now
    worker: str | None = None  # its place in a distributed job (env.distributed.worker)
    collective_share: float | None = None  # the newest epoch's share in the all-reduce step
    last_seen: float | None = None  # wall time of the newest record

    @property
    def retraces(self) -> int:
        """New tf.function traces after warm-up, as every view counts them."""
        after = self.retrace_count.after_warmup
        return after if self.retraces_said is None else max(after, self.retraces_said)

    @property
    def running(self) -> bool:
        return self.ended is None and not self.gone

    @property
    def state(self) -> str:
        """One word for the view: running, detached, gone, or how it ended."""
        if self.ended is not None:
            return {"completed": "done"}.get(self.ended, self.ended)
        if self.gone:
            return "gone"
        if self.attached is False:
            return "detached"
        return "running"

    def add_finding(self, rec: Mapping[str, Any]) -> None:
        """A finding record (from the trace, or the daemon's status): into the run's ledger."""
        self.findings.take(rec)

    def add(self, rec: Mapping[str, Any]) -> None:
        """Fold one trace record in."""
        kind = rec.get("type")
        t = _num(rec.get("t"))
        if t is not None:
            self.last_seen = t
        if kind == "epoch":
            self._epoch(rec)
        elif kind == "sample":
            self.rss = _num(rec.get("rss_bytes")) or self.rss
            self._gpu(rec.get("gpu"))
        elif kind == "run_start":
            env = rec.get("env") if isinstance(rec.get("env"), Mapping) else {}
            assert isinstance(env, Mapping)
            pid = env.get("pid")
            self.pid = pid if isinstance(pid, int) else self.pid
            self.script = str(env["script"]) if env.get("script") else self.script
            self.hostname = str(env["hostname"]) if env.get("hostname") else None
            self.started = t
            self.memory_limit = _num(env.get("memory_limit_bytes")) or _num(env.get("memory_total_bytes"))
            distributed = env.get("distributed")
            if isinstance(distributed, Mapping) and distributed.get("worker"):
                self.worker = str(distributed["worker"])
            training = rec.get("training")
            if isinstance(training, Mapping):
                self._fit(training)
        elif kind == "fit_start":
            self._fit(rec)
        elif kind in ("finding", "finding_update"):  # an update replaces the finding it updates
            self.add_finding(rec)
        elif kind == "run_end":
            self.ended = str(rec.get("ended", "ended"))

    def _fit(self, rec: Mapping[str, Any]) -> None:
        epochs = rec.get("epochs")
        if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0:
            self.planned = epochs

    def _epoch(self, rec: Mapping[str, Any]) -> None:
        epoch = rec.get("epoch")
        self.epoch = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else self.epoch
        self.epochs += 1
        seconds = _num(rec.get("seconds"))
        if seconds is not None:
            self.epoch_seconds.append(seconds)
        collective = rec.get("collective")
        in_step = _num(collective.get("seconds")) if isinstance(collective, Mapping) else None
        if in_step is not None and seconds:
            self.collective_share = min(1.0, in_step / seconds)
        self.last_epoch_t = _num(rec.get("end")) or _num(rec.get("t")) or self.last_epoch_t
        metrics = rec.get("metrics")
        if isinstance(metrics, Mapping):
            self.loss = _num(metrics.get("loss"))
        host = rec.get("host")
        if isinstance(host, Mapping):
            self.rss = _num(host.get("rss_bytes")) or self.rss
            self.memory_limit = _num(host.get("memory_limit_bytes")) or self.memory_limit
            if self.memory_limit is None:
                self.memory_limit = _num(host.get("sys_total_bytes"))
        self._gpu(rec.get("gpu"))
        if self.gpu is None:
            tf_mem = rec.get("tf_memory")
            if isinstance(tf_mem, Mapping):
                cur = [_num(b.get("current_bytes")) for b in tf_mem.values() if isinstance(b, Mapping)]
                self.gpu = sum(v for v in cur if v is not None) if any(v is not None for v in cur) else None
        self.retrace_count.add(rec)

    def _gpu(self, block: Any) -> None:
        devices = block.get("devices") if isinstance(block, Mapping) else None
        if not isinstance(devices, list):
            return
        used = [_num(d.get("process_memory_bytes")) for d in devices if isinstance(d, Mapping)]
        if any(v is not None for v in used):
            self.gpu = sum(v for v in used if v is not None)


def from_status(entry: Mapping[str, Any], state: RunState | None = None) -> RunState:
    """Update (or make) a run's state from one entry of the daemon's status reply."""
    run_id = str(entry.get("run_id", "?"))
    s = state if state is not None else RunState(run_id=run_id)
    pid = entry.get("pid")
    s.pid = pid if isinstance(pid, int) and pid > 0 else s.pid
    s.script = str(entry["script"]) if entry.get("script") else s.script
    s.started = _num(entry.get("started")) or s.started
    s.attached = bool(entry.get("attached"))
    epoch = entry.get("epoch")
    epochs = entry.get("epochs")
    seconds = _num(entry.get("last_epoch_seconds"))
    new_epoch = isinstance(epoch, int) and epoch != s.epoch
    if isinstance(epochs, int) and epochs > s.epochs:
        new_epoch = True
        s.epochs = epochs
    if new_epoch:
        s.epoch = epoch if isinstance(epoch, int) else s.epoch
        if seconds is not None:
            s.epoch_seconds.append(seconds)
    s.last_epoch_t = _num(entry.get("last_epoch_t")) or s.last_epoch_t
    s.rss = _num(entry.get("rss_bytes")) or s.rss
    said = entry.get("retraces")
    s.retraces_said = said if isinstance(said, int) and not isinstance(said, bool) else s.retraces_said
    for f in entry.get("findings") or []:
        if isinstance(f, Mapping):
            s.add_finding(f)
    return s
