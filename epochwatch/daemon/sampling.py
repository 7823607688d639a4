"""What the daemon does with 1 Hz samples: keep peaks per epoch, thin out what is written.

Sampling runs at `sampling.interval_seconds` for the whole run, because epoch peaks and
"vanished" need every sample; only what goes into the trace is thinned:

- for the first `full_rate_seconds` of a run, every sample is written;
- then one `sample` per `window_seconds`: the window's last sample, plus `window_seconds`,
  `samples` (how many it summarises), and `min`/`max` of `rss_bytes`, `cpu_pct` and
  `gpu_process_memory_bytes` over the window, so spikes and the lower envelope survive;
- after `long_after_seconds`, the window widens to `long_window_seconds`.
A 3-day run thus writes about 5,000 sample lines instead of 260,000.

Everything here is pure (no I/O), so the thinning and the peaks are tested with plain dicts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from epochwatch.daemon.config import Sampling

Record = dict[str, Any]
RECENT = 900  # compact samples kept per run for epoch peaks (15 min at 1 Hz)
LAST_SAMPLES = 10  # raw samples kept for a vanished run's run_end


def gpu_process_memory(sample: Record) -> int | None:
    """This process's memory over all GPUs, or None when there is no GPU block."""
    gpu = sample.get("gpu")
    if not isinstance(gpu, dict):
        return None
    total, seen = 0, False
    for dev in gpu.get("devices") or ():
        value = dev.get("process_memory_bytes") if isinstance(dev, dict) else None
        if isinstance(value, (int, float)):
            total += int(value)
            seen = True
    return total if seen else None


def envelope_values(sample: Record) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in ("rss_bytes", "cpu_pct"):
        value = sample.get(key)
        if isinstance(value, (int, float)):
            out[key] = value
    gpu = gpu_process_memory(sample)
    if gpu is not None:
        out["gpu_process_memory_bytes"] = gpu
    return out


class Decimator:
    """Decides which samples become `sample` records (see the module docstring)."""

    def __init__(self, cfg: Sampling, started: float) -> None:
        self.cfg = cfg
        self.started = started
        self._window_start: float | None = None
        self._count = 0
        self._min: dict[str, float] = {}
        self._max: dict[str, float] = {}
        self._last: Record | None = None

    def window(self, t: float) -> float:
        """The window length for a sample at time t (0: write every sample)."""
        age = t - self.started
        if age < self.cfg.full_rate_seconds:
            return 0.0
        if age < self.cfg.long_after_seconds:
            return self.cfg.window_seconds
        return self.cfg.long_window_seconds

    def add(self, sample: Record) -> Record | None:
        """Take one sample; return the record to write now, if any."""
        t = float(sample.get("t", 0.0))
        width = self.window(t)
        if width <= 0:
            return sample
        if self._window_start is None:
            self._window_start = t
        self._fold(sample)
        step = self.cfg.interval_seconds  # a window of width w holds w/step samples, give or take jitter
        if t - self._window_start + step >= width - step / 2:
            return self.flush()
        return None

    def _fold(self, sample: Record) -> None:
        self._count += 1
        self._last = sample
        for key, value in envelope_values(sample).items():
            self._min[key] = min(self._min.get(key, value), value)
            self._max[key] = max(self._max.get(key, value), value)

    def flush(self) -> Record | None:
        """The summary of the open window (run end, shutdown), or None when it is empty."""
        if self._last is None or self._window_start is None:
            return None
        out = dict(self._last)
        out["window_seconds"] = round(
            float(out.get("t", 0.0)) - self._window_start + self.cfg.interval_seconds, 3
        )
        out["samples"] = self._count
        out["min"] = dict(self._min)
        out["max"] = dict(self._max)
        self._window_start = None
        self._count = 0
        self._min, self._max = {}, {}
        self._last = None
        return out


@dataclass(frozen=True)
class Compact:
    t: float
    rss: float | None
    cpu: float | None
    gpu: float | None


class PeakTracker:
    """Within-epoch maxima for the `peaks` the daemon adds to each epoch record.

    Keeps the last RECENT samples in compact form; an epoch's peaks are the maxima over
    samples between its `start` and `end`. An epoch shorter than the sampling interval
    has none inside it, and gets the nearest sample's values (`samples: 0`).
    """

    def __init__(self) -> None:
        self.recent: deque[Compact] = deque(maxlen=RECENT)
        self.last_raw: deque[Record] = deque(maxlen=LAST_SAMPLES)

    def add(self, sample: Record) -> None:
        values = envelope_values(sample)
        self.recent.append(
            Compact(
                float(sample.get("t", 0.0)),
                values.get("rss_bytes"),
                values.get("cpu_pct"),
                values.get("gpu_process_memory_bytes"),
            )
        )
        self.last_raw.append(sample)

    def peaks(self, start: float | None, end: float | None) -> Record | None:
        if not self.recent:
            return None
        if start is None or end is None:
            inside = [self.recent[-1]]
            count = 0
        else:
            inside = [c for c in self.recent if start <= c.t <= end + 0.5]
            count = len(inside)
            if not inside:
                inside = [min(self.recent, key=lambda c: abs(c.t - end))]
        out: Record = {}
        for name, attr in (("rss_bytes", "rss"), ("gpu_process_memory_bytes", "gpu"), ("cpu_pct", "cpu")):
            values = [getattr(c, attr) for c in inside if getattr(c, attr) is not None]
            if values:
                out[name] = max(values)
        out["samples"] = count
        return out


def compact_sample(sample: Record) -> Record:
    """A short form of a sample for `run_end.last_samples`."""
    out: Record = {"t": sample.get("t")}
    out.update(envelope_values(sample))
    for key in ("sys_available_bytes", "memory_limit_bytes", "threads"):
        if key in sample:
            out[key] = sample[key]
    return out


def epoch_end_values(rec: Record) -> dict[str, float]:
    """rss and GPU process memory as the hook read them at the epoch end."""
    out: dict[str, float] = {}
    host = rec.get("host")
    if isinstance(host, dict) and isinstance(host.get("rss_bytes"), (int, float)):
        out["rss_bytes"] = host["rss_bytes"]
    gpu = gpu_process_memory(rec)
    if gpu is not None:
        out["gpu_process_memory_bytes"] = gpu
    return out
