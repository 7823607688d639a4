"""Human units for titles, tables and evidence: bytes in binary units, durations, rates.

The one home of the unit vocabulary (`UNITS`), of which finding kinds measure bytes
(`BYTES_KINDS`), and of formatting a value in its unit (`fmt_in`) or an evidence entry by
its key and its finding's unit (`fmt_evidence`): the text report, the HTML report and the
exporters all read them here, so a number reads the same wherever it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

UNITS = ("bytes", "seconds", "count", "number", "epoch")
# Kinds whose trend (slope, levels, limits) is in bytes; a slowdown's is in seconds.
BYTES_KINDS = frozenset(
    {"host_memory_growth", "gpu_memory_growth", "disk_growth", "swap_pressure", "gpu_memory_pressure"}
)
# Evidence keys in the finding's own unit (bytes for leaks, seconds for slowdowns).
LEVEL_KEYS = frozenset(
    {"slope_per_epoch", "slope_ci95", "start", "now", "baseline", "level", "limit", "run_baseline"}
)

# Evidence keys that hold epoch (or fit) indexes: 0-based in the trace, shown from 1.
INDEX_KEYS = frozenset(
    {"epoch", "epochs", "fit", "fits", "first_fit", "ended_epoch", "ended_fit", "onset_fit"}
)

MIB = 1024.0 * 1024.0
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def fmt_bytes(n: float) -> str:
    if n != n:
        return "-"
    sign = "-" if n < 0 else ""
    n = abs(n)
    i = 0
    while n >= 1024 and i < len(_BYTE_UNITS) - 1:
        n /= 1024.0
        i += 1
    if i == 0:
        return f"{sign}{n:.0f} B"
    return f"{sign}{n:.1f} {_BYTE_UNITS[i]}" if n < 100 else f"{sign}{n:.0f} {_BYTE_UNITS[i]}"


def fmt_seconds(s: float) -> str:
    if s != s:
        return "-"
    if s < 0.001:
        return f"{s * 1e6:.0f}us"
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 100:
        return f"{s:.2f}s"
    return fmt_duration(s)


def fmt_duration(s: float) -> str:
    """Coarse duration: '45 s', '12 min', '3.5 h', '4.2 days'."""
    if s != s or math.isinf(s):
        return "-"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def fmt_number(x: float) -> str:
    if x != x:
        return "-"
    if x == 0:
        return "0"
    a = abs(x)
    if a >= 1e5 or a < 1e-3:
        return f"{x:.3g}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 1:
        return f"{x:.3g}"
    return f"{x:.4f}".rstrip("0")


def fmt_pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.1f}%"


def evidence_unit(kind: str, evidence: Mapping[str, Any]) -> str:
    """The unit of a finding's trend: its evidence's own `unit` when it says one, else by kind."""
    said = evidence.get("unit")
    if isinstance(said, str) and said in UNITS:
        return said
    if kind == "disk_growth" and evidence.get("series") == "files":
        return "count"
    if kind in BYTES_KINDS:
        return "bytes"
    if kind == "slowdown":
        return "seconds"
    return "number"


def fmt_in(unit: str, v: Any) -> str:
    """A number in its unit (table cells, slopes); '-' for missing or NaN."""
    if v is None or isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        return "-"
    if unit == "bytes":
        return fmt_bytes(float(v))
    if unit == "seconds":
        return fmt_seconds(float(v))
    if unit == "epoch" and float(v).is_integer():
        return f"{int(v) + 1}"  # the trace's 0-based index, as Keras counts
    if unit in ("count", "epoch"):
        return f"{int(v)}" if float(v).is_integer() else fmt_number(float(v))
    return fmt_number(float(v))


def fmt_evidence(key: str, v: Any, unit: str) -> str:
    """One evidence value, by its key's suffix (`_bytes`, `_seconds`, `share`) and the
    finding's unit for the keys in it (LEVEL_KEYS)."""
    if isinstance(v, bool) or v is None:
        return str(v).lower()
    if not isinstance(v, int | float):
        text = str(v)
        return text if len(text) <= 200 else text[:199] + "…"
    if key in INDEX_KEYS and isinstance(v, int):
        return str(v + 1)  # as Keras counts epochs
    if key == "bytes" or key.endswith("_bytes") or (unit == "bytes" and key in LEVEL_KEYS):
        return fmt_bytes(float(v))
    if key == "seconds_to_limit":
        return fmt_duration(float(v))
    if key.endswith("_seconds") or (unit == "seconds" and key in LEVEL_KEYS):
        return fmt_seconds(float(v))
    if key.endswith("share"):
        return fmt_pct(float(v))
    if key.startswith("p_value"):
        return f"{v:.2g}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return fmt_number(float(v))
