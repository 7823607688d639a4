"""Per-epoch series, kept as compact columns instead of whole epoch records.

Detectors look at numbers per epoch (seconds, RSS, bytes of a directory, new traces of a
function), never at raw 1 Hz samples. Folding each epoch record into typed arrays as it
is read keeps a run of 100,000 epochs in a few tens of MB (8 bytes per value), where
the records themselves would take gigabytes as Python dicts; and it is the same code
the online analyzer runs with a bounded `limit`, so offline and online see the same
numbers.

A value that the record does not have is NaN: absent stays absent, never 0.
Indexes are absolute (0 = the run's first epoch record), also after trimming.
"""

from __future__ import annotations

import math
import os
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from epochwatch.analysis.functions import judged_new
from epochwatch.trace import schema

NAN = math.nan

# Scalar columns: name -> path into the epoch record.
SCALARS: dict[str, tuple[str, ...]] = {
    "epoch": ("epoch",),
    "fit": ("fit",),
    "end": ("end",),
    "seconds": ("seconds",),
    "overhead": ("overhead_seconds",),
    "steps": ("steps",),
    "step": ("step",),  # an interval's: the steps of its epoch done at its end
    "step_median": ("step_seconds", "median"),
    "step_p90": ("step_seconds", "p90"),
    "val_seconds": ("val_seconds",),
    "loss": ("metrics", "loss"),
    "val_loss": ("metrics", "val_loss"),
    "lr": ("lr",),
    "batch_size": ("batch_size",),
    "steps_per_second": ("steps_per_second",),
    "input_wait": ("input_wait_seconds",),
    "input_producer": ("input_producer_seconds",),
    "input_span": ("input_span_seconds",),
    "rss": ("host", "rss_bytes"),
    "swap": ("host", "swap_bytes"),
    "cpu_seconds": ("host", "cpu_seconds"),
    "threads": ("host", "threads"),
    "open_fds": ("host", "open_fds"),
    "sys_available": ("host", "sys_available_bytes"),
    "sys_total": ("host", "sys_total_bytes"),
    "sys_swap_used": ("host", "sys_swap_used_bytes"),
    "mem_limit": ("host", "memory_limit_bytes"),
    "rss_peak": ("peaks", "rss_bytes"),
    "retrace_new": ("retraces", "new"),
    "graph_build": ("retraces", "graph_build_seconds"),
    "live_functions": ("retraces", "live_concrete_functions"),
    "runnable": ("host", "runnable"),
    "cpus": ("host", "cpus"),
    "cpu_pressure": ("host", "cpu_pressure_some_seconds"),
    "cpus_busy": ("host", "cpus_busy_seconds"),
    "cpu_wait": ("host", "cpu_wait_seconds"),
    "children_cpu": ("host", "children_cpu_seconds"),
    "callback_seconds": ("callbacks", "seconds"),
    "collective": ("collective", "seconds"),
    "calls": ("inference", "calls"),  # an inference window's calls (NaN: an epoch that trained)
    "work": ("config",),  # the fit series' points: what an epoch of that fit computes (run.work_of)
}
# Filled from the samples between two epoch records (daemon mode), not from the epoch.
SAMPLED = ("rss_min", "contention_cpu", "host_cpu_pct", "samples", "rss_first")
# Keyed families: one column per device, directory or function.
KEYED = (
    "gpu_proc",
    "gpu_used",
    "gpu_total",
    "gpu_throttled",
    "gpu_util",
    "tf_current",
    "tf_peak",
    "dir_bytes",
    "dir_files",
    "dir_free",
    "fn_new",
    "cb_seconds",  # time in each callback's on_epoch_end, by class name (Keras)
    "gpu_others_sm",  # SM utilisation of other processes on the device (daemon samples), summed
    "gpu_self_sm",  # the run's own SM utilisation on the device (daemon samples)
)
# Epoch blocks holding a framework allocator's own bytes per device (`current_bytes`,
# `peak_bytes`), read into the tf_current/tf_peak columns whichever framework wrote them.
ALLOCATOR_BLOCKS = {
    "tf_memory": "TF allocator",
    "torch_memory": "torch.cuda allocator",
    "jax_memory": "JAX device memory",
}

# Directories side by side under one parent (a sweep's trials): their sum, keyed `<parent>/*`,
# from this many on (series._siblings).
SIBLINGS = "/*"
MIN_SIBLINGS = 3

OTHERS_KEPT = 256  # changes of "who else is on a GPU" remembered per device

# Warm-up state per epoch (series.warm): the first epoch of a fit or loop (compile, first
# traces), the few after it that still trace (settling), or steady.
STEADY, SETTLING, FIRST = 0, 1, 2


def number(value: Any) -> float:
    """A record's number as a float; NaN for anything else (bools, strings, None)."""
    kind = type(value)
    if kind is float or kind is int:  # what orjson gives: the fast path of report's reading
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NAN
    return float(value)


def _get(rec: Mapping[str, Any], path: tuple[str, ...]) -> float:
    cur: Any = rec
    for part in path:
        if not isinstance(cur, Mapping):
            return NAN
        cur = cur.get(part)
    return number(cur)


def finite_number(value: Any) -> float | None:
    """A record's number as a float when it is finite; None for anything else."""
    x = number(value)
    return x if math.isfinite(x) else None


def amount(value: Any) -> float:
    """A record's count or seconds, 0.0 where it is absent or not a finite number."""
    return finite_number(value) or 0.0


def whole(value: Any) -> int:
    """A record's integer count, 0 for anything else (floats, bools, absent)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


EXAMPLES_KEPT = 4


@dataclass
class CauseLog:
    """Where one (argument, change) made new traces: every epoch index (4 bytes each) and
    the first and newest few was/now examples."""

    indexes: array[int] = field(default_factory=lambda: array("l"))
    first: list[tuple[int, str, str]] = field(default_factory=list)
    recent: deque[tuple[int, str, str]] = field(default_factory=lambda: deque(maxlen=EXAMPLES_KEPT))

    def add(self, index: int, was: str, now: str) -> None:
        self.indexes.append(index)
        if len(self.first) < EXAMPLES_KEPT:
            self.first.append((index, was, now))
        else:
            self.recent.append((index, was, now))


@dataclass
class FunctionRetraces:
    """What made one tf.function trace anew, so a finding can name the argument.

    Kept per (arg, change) with epoch indexes, so a detector judging epoch k (offline
    replay) counts only the causes seen before k, as the online analyzer did.
    """

    causes: dict[tuple[str, str], CauseLog] = field(default_factory=dict)
    xla: bool = False  # compiled with XLA (jit_compile=True): every new shape compiles anew

    def causes_before(self, end: int) -> Counter[tuple[str, str]]:
        out: Counter[tuple[str, str]] = Counter()
        for key, log in self.causes.items():
            n = bisect_left(log.indexes, end)
            if n:
                out[key] = n
        return out

    def example(self, arg: str, change: str, end: int) -> tuple[str, str]:
        """The newest (was, now) of (arg, change) before `end` that the log kept."""
        log = self.causes.get((arg, change))
        for index, was, now in [*reversed(log.recent), *reversed(log.first)] if log is not None else ():
            if index < end:
                return was, now
        return "", ""


@dataclass
class _Pending:
    """Samples seen since the last epoch record (daemon traces interleave them)."""

    rss_min: float = math.inf
    rss_max: float = -math.inf
    # The first RSS read within the epoch (a sample's or an interval's, see `note_rss`):
    # where the epoch began, for what a storm in a run's only epoch added (retraces.py).
    rss_first: float = NAN
    contention: float = 0.0
    host_cpu: float = 0.0
    host_cpu_n: int = 0
    count: int = 0
    # device -> [sum, samples] of others' / the run's own SM utilisation
    others_sm: dict[str, list[float]] = field(default_factory=dict)
    self_sm: dict[str, list[float]] = field(default_factory=dict)
    others: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # newest per device


class EpochSeries:
    """Columns of per-epoch numbers; `limit` keeps only the newest epochs (online use)."""

    def __init__(self, limit: int | None = None, *, restarts: bool = True) -> None:
        """restarts=False: an epoch number that does not grow is not a new segment (the
        sub-epoch interval series, where many records share their epoch's number)."""
        self.limit = limit
        self.restarts = restarts
        self.count = 0  # epochs added in total
        self.offset = 0  # absolute index of the first epoch still held
        self.cols: dict[str, array[float]] = {name: array("d") for name in (*SCALARS, *SAMPLED)}
        self.keyed: dict[str, dict[str, array[float]]] = {name: {} for name in KEYED}
        self.warm = array("b")
        # Absolute index of each fit's (segment's) first epoch: a window never spans two
        # fits (a new model's epochs are not the old one's continuation).
        self.starts = array("l")
        self.dir_roles: dict[str, str] = {}
        self.gpu_names: dict[str, str] = {}
        # Which framework's allocator a device's tf_current/tf_peak came from (evidence).
        self.allocator_sources: dict[str, str] = {}
        self.gpu_reasons: dict[str, Counter[str]] = {}
        self.functions: dict[str, FunctionRetraces] = {}
        # device -> [(epoch index from which, the other processes seen on it)]
        self.gpu_others: dict[str, list[tuple[int, list[dict[str, Any]]]]] = {}
        self._pending = _Pending()
        self._segment: tuple[Any, Any] | None = None
        self._segment_len = 0
        self._last_epoch: float = NAN

    # -- building -------------------------------------------------------------------------

    def note_rss(self, rss: float) -> None:
        """An RSS read before the next epoch record ends (an interval's): the epoch's first
        is kept (`rss_first`), the RSS where the epoch began as near as the trace says."""
        if rss == rss and self._pending.rss_first != self._pending.rss_first:
            self._pending.rss_first = rss

    def add_sample(self, rec: Mapping[str, Any]) -> None:
        # Called for every 1 Hz sample of a daemon trace (30 per epoch): plain comparisons
        # and exact type checks first, since the ABC checks cost more than the work here.
        p = self._pending
        p.count += 1
        rss = number(rec.get("rss_bytes"))
        if rss == rss:
            if p.rss_first != p.rss_first:
                p.rss_first = rss
            if rss < p.rss_min:
                p.rss_min = rss
            if rss > p.rss_max:
                p.rss_max = rss
        cont = rec.get("contention")
        if cont is not None and (type(cont) is dict or isinstance(cont, Mapping)):
            busy = cont.get("cpu")
            if type(busy) is list:
                for e in busy:
                    pct = e.get("cpu_pct") if type(e) is dict else None
                    if (type(pct) is float or type(pct) is int) and pct == pct:
                        p.contention += pct
            host = number(cont.get("host_cpu_pct"))
            if host == host:
                p.host_cpu += host
                p.host_cpu_n += 1
            self._gpu_sample(p, cont)

    @staticmethod
    def _gpu_sample(p: _Pending, cont: Mapping[str, Any]) -> None:
        """Per device: the others' summed SM utilisation and the run's own, where NVML gave it."""
        others: dict[str, float] = {}
        who: dict[str, list[dict[str, Any]]] = {}
        entries = cont.get("gpu")
        for e in entries if isinstance(entries, list) else ():
            if not isinstance(e, Mapping) or isinstance(e.get("device"), bool):
                continue
            dev = str(e.get("device"))[:16]
            who.setdefault(dev, []).append(
                {k: e[k] for k in ("pid", "name", "user", "sm_util_pct", "used_memory_bytes") if k in e}
            )
            sm = number(e.get("sm_util_pct"))
            if sm == sm:
                others[dev] = others.get(dev, 0.0) + sm
        mine = cont.get("gpu_self")
        for e in mine if isinstance(mine, list) else ():
            if not isinstance(e, Mapping):
                continue
            dev = str(e.get("device"))[:16]
            sm = number(e.get("sm_util_pct"))
            if sm == sm:
                acc = p.self_sm.setdefault(dev, [0.0, 0.0])
                acc[0] += sm
                acc[1] += 1
                others.setdefault(dev, 0.0)  # NVML answered for this device: no others is 0%
        for dev, total in others.items():
            acc = p.others_sm.setdefault(dev, [0.0, 0.0])
            acc[0] += total
            acc[1] += 1
        for dev, entries_ in who.items():
            p.others[dev] = entries_[:8]

    def add_epoch(self, rec: Mapping[str, Any]) -> None:
        n_before = self.count - self.offset
        values = {name: _get(rec, path) for name, path in SCALARS.items()}
        p = self._pending
        rss = values["rss"]
        low = min(rss, p.rss_min) if rss == rss else (p.rss_min if p.count and p.rss_min < math.inf else NAN)
        values["rss_min"] = low
        if values["rss_peak"] != values["rss_peak"] and p.rss_max > -math.inf:
            values["rss_peak"] = max(p.rss_max, rss) if rss == rss else p.rss_max
        values["contention_cpu"] = p.contention / p.count if p.count else NAN
        values["host_cpu_pct"] = p.host_cpu / p.host_cpu_n if p.host_cpu_n else NAN
        values["samples"] = float(p.count)
        values["rss_first"] = p.rss_first
        self._pending = _Pending()
        warm = self._is_warm(rec, values)
        if warm == FIRST:
            self.starts.append(self.count)
        for name, col in self.cols.items():
            col.append(values[name])
        self.warm.append(warm)
        keyed = self._keyed_values(rec)
        for family, sums in (("gpu_others_sm", p.others_sm), ("gpu_self_sm", p.self_sm)):
            for dev, (total, n) in sums.items():
                keyed.setdefault(family, {})[dev] = total / n
        gpu = rec.get("gpu")
        for i, dev in enumerate(gpu.get("devices") or () if isinstance(gpu, Mapping) else ()):
            others = dev.get("others") if isinstance(dev, Mapping) else None
            key = str(dev.get("index", i))[:16] if isinstance(dev, Mapping) else ""
            if isinstance(others, list) and key not in p.others:
                p.others[key] = [
                    {k: e[k] for k in ("pid", "name", "sm_util_pct", "used_memory_bytes") if k in e}
                    for e in others[:8]
                    if isinstance(e, Mapping)
                ]
        for dev, entries in p.others.items():
            history = self.gpu_others.setdefault(dev, [])
            pids = [e.get("pid") for e in entries]
            if not history or [e.get("pid") for e in history[-1][1]] != pids:
                history.append((self.count, entries))
                del history[:-OTHERS_KEPT]
            else:
                history[-1] = (history[-1][0], entries)  # same processes: keep the newest figures
        for family, cols in self.keyed.items():
            default = 0.0 if family == "fn_new" else NAN
            got = keyed.get(family, {})
            for key in got:
                if key not in cols:
                    cols[key] = array("d", [default]) * n_before
            for key, col in cols.items():
                col.append(got.get(key, default))
        self.count += 1
        if self.limit is not None and self.count - self.offset > 2 * self.limit:
            self._trim(self.count - self.offset - self.limit)

    def _is_warm(self, rec: Mapping[str, Any], values: dict[str, float]) -> int:
        """The first epoch of each fit (or loop) is warm-up, and so are up to 3 more at its
        start while they still make new traces (compile and first traces settling)."""
        segment = (rec.get("fit"), rec.get("source"))
        epoch = values["epoch"]
        restarted = (
            self.restarts
            and epoch == epoch
            and self._last_epoch == self._last_epoch
            and epoch <= self._last_epoch
        )
        self._last_epoch = epoch
        if segment != self._segment or restarted:
            self._segment = segment
            self._segment_len = 1
            return FIRST
        self._segment_len += 1
        prev_warm = bool(self.warm[-1]) if len(self.warm) else False
        new = judged_new(rec.get("retraces"), values["retrace_new"])
        return SETTLING if prev_warm and self._segment_len <= 4 and new == new and new > 0 else STEADY

    def _siblings(self, out: dict[str, dict[str, float]], recursive: set[str]) -> None:
        """Directories the run saved into side by side, counted together as `<parent>/*`
        too: a sweep's trials each save into a directory of their own (a `mkdtemp()` per
        trial under /tmp, keras-tuner's `trial_NN`), each flat after its trial while what
        they leave grows with the trials (348 MiB left in /tmp by 14 trials, said nowhere).
        Not where the parent or a directory above it is watched whole (its total holds them)."""
        by_parent: dict[str, list[str]] = {}
        for key in out.get("dir_bytes", {}):
            parent = os.path.dirname(key.rstrip("/"))
            whole = any(parent == r or parent.startswith(r + "/") for r in recursive)
            if parent and not whole and not key.endswith(SIBLINGS):
                by_parent.setdefault(parent, []).append(key)
        for parent, keys in by_parent.items():
            if len(keys) < MIN_SIBLINGS:
                continue
            key = parent.rstrip("/") + SIBLINGS
            for family in ("dir_bytes", "dir_files"):
                values = [out[family][k] for k in keys if out[family][k] == out[family][k]]
                out[family][key] = sum(values) if values else NAN
            out["dir_free"][key] = next(
                (out["dir_free"][k] for k in keys if out["dir_free"][k] == out["dir_free"][k]), NAN
            )
            roles = Counter(self.dir_roles.get(k, "user") for k in keys)
            self.dir_roles[key] = roles.most_common(1)[0][0]

    def _keyed_values(self, rec: Mapping[str, Any]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        gpu = rec.get("gpu")
        devices = gpu.get("devices") if isinstance(gpu, Mapping) else None
        if isinstance(devices, list):
            for i, dev in enumerate(devices):
                if not isinstance(dev, Mapping):
                    continue
                key = str(dev.get("index", i))
                if isinstance(dev.get("name"), str):
                    self.gpu_names[key] = dev["name"]
                out.setdefault("gpu_proc", {})[key] = number(dev.get("process_memory_bytes"))
                out.setdefault("gpu_used", {})[key] = number(dev.get("memory_used_bytes"))
                out.setdefault("gpu_total", {})[key] = number(dev.get("memory_total_bytes"))
                out.setdefault("gpu_util", {})[key] = number(dev.get("utilization_pct"))
                # The hook's own reading of who else computes on the device (embedded mode);
                # the daemon's samples, where there are any, take precedence (add_epoch).
                for family, field_ in (("gpu_others_sm", "others_sm_pct"), ("gpu_self_sm", "process_sm_pct")):
                    share = number(dev.get(field_))
                    if share == share:
                        out.setdefault(family, {})[key] = share
                reasons = dev.get("throttle_reasons")
                if isinstance(reasons, list):
                    names = [str(r) for r in reasons]
                    out.setdefault("gpu_throttled", {})[key] = 1.0 if names else 0.0
                    if names:
                        self.gpu_reasons.setdefault(key, Counter()).update(names)
        for family, source in ALLOCATOR_BLOCKS.items():
            mem = rec.get(family)
            if not isinstance(mem, Mapping):
                continue
            for dev, block in mem.items():
                if isinstance(block, Mapping):
                    out.setdefault("tf_current", {})[str(dev)] = number(block.get("current_bytes"))
                    out.setdefault("tf_peak", {})[str(dev)] = number(block.get("peak_bytes"))
                    self.allocator_sources[str(dev)] = str(block.get("source") or source)[:60]
        recursive: set[str] = set()
        for key, block in schema.dir_entries(rec.get("dirs")):
            out.setdefault("dir_bytes", {})[key] = number(block.get("bytes"))
            out.setdefault("dir_files", {})[key] = number(block.get("files"))
            free = number(block.get("free_bytes", block.get("disk_free_bytes")))
            out.setdefault("dir_free", {})[key] = free
            if isinstance(block.get("role"), str):
                self.dir_roles[key] = block["role"]
            if not block.get("top_level_only"):
                recursive.add(key.rstrip("/"))
        self._siblings(out, recursive)
        callbacks = rec.get("callbacks")
        by_class = callbacks.get("by_class") if isinstance(callbacks, Mapping) else None
        if isinstance(by_class, Mapping):
            for name, seconds in list(by_class.items())[:32]:
                out.setdefault("cb_seconds", {})[str(name)[:120]] = number(seconds)
        retraces = rec.get("retraces")
        functions = retraces.get("functions") if isinstance(retraces, Mapping) else None
        if isinstance(functions, Mapping):
            for name, block in functions.items():
                if isinstance(block, Mapping):
                    new = number(block.get("new"))
                    if new == new and new > 0:
                        out.setdefault("fn_new", {})[str(name)] = new
                    self._retrace_causes(str(name), block)
        return out

    def _retrace_causes(self, name: str, block: Mapping[str, Any]) -> None:
        """What made function `name` trace anew in this epoch (its `causes`), by epoch index."""
        info = self.functions.get(name)
        if info is None:
            info = self.functions[name] = FunctionRetraces()
        info.xla = info.xla or block.get("xla") is True
        causes = block.get("causes")
        if isinstance(causes, list):
            for cause in causes[:32]:
                if not isinstance(cause, Mapping):
                    continue
                key = (str(cause.get("arg", "?"))[:120], str(cause.get("change", "?"))[:40])
                log = info.causes.get(key)
                if log is None:
                    if len(info.causes) >= 64:
                        continue
                    log = info.causes[key] = CauseLog()
                log.add(self.count, str(cause.get("was", ""))[:120], str(cause.get("now", ""))[:120])

    def _trim(self, drop: int) -> None:
        for col in self.cols.values():
            del col[:drop]
        for family in self.keyed.values():
            for key in list(family):
                col = family[key]
                del col[:drop]
        del self.warm[:drop]
        self.offset += drop
        keep = bisect_right(self.starts, self.offset) - 1  # the start of the fit now running stays
        if keep > 0:
            del self.starts[:keep]

    # -- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.count

    def column(self, name: str, key: str | None = None) -> array[float] | None:
        if key is None:
            return self.cols.get(name)
        return self.keyed.get(name, {}).get(key)

    def others_on_gpu(self, device: str, end: int) -> list[dict[str, Any]]:
        """The other processes last seen on a GPU before epoch index `end` (daemon samples)."""
        for index, entries in reversed(self.gpu_others.get(device, [])):
            if index < end:
                return entries
        return []

    def nbytes(self) -> int:
        """Bytes held by the columns (what this series costs the process that keeps it)."""
        arrays = [*self.cols.values(), *(c for f in self.keyed.values() for c in f.values())]
        return sum(a.itemsize * len(a) for a in arrays) + len(self.warm) + 8 * len(self.starts)

    def segment_start(self, index: int) -> int:
        """Absolute index of the first epoch of the fit (segment) holding epoch `index`."""
        at = bisect_right(self.starts, index) - 1
        return self.starts[at] if at >= 0 else 0

    def keys(self, family: str) -> list[str]:
        return list(self.keyed.get(family, {}))

    def value(self, name: str, index: int, key: str | None = None) -> float:
        col = self.column(name, key)
        i = index - self.offset
        if col is None or i < 0 or i >= len(col):
            return NAN
        return col[i]

    def indexes(
        self, end: int | None = None, size: int | None = None, warm: bool = False, settling: bool = False
    ) -> Iterator[int]:
        """Absolute indexes of the trailing `size` epochs before `end`, newest last.

        Warm-up epochs are left out unless `warm`; with `settling`, only the first epoch of
        each fit is left out (for counts such as new traces, where settling is the news).
        """
        stop = self.count if end is None else min(end, self.count)
        out: list[int] = []
        i = stop - 1
        skip = FIRST if settling else SETTLING
        while i >= self.offset and (size is None or len(out) < size):
            if warm or self.warm[i - self.offset] < skip:
                out.append(i)
            i -= 1
        return reversed(out)
