"""Human units for titles and tables: bytes in binary units, durations, rates."""

from __future__ import annotations

import math

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
