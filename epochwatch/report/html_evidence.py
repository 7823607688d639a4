"""A finding's evidence as readable (name, value) pairs for the HTML report.

Evidence is a free-form dict per finding kind (docs/findings.md); numbers read better in
their units, so the unit comes from the key's suffix and from the finding's kind (a
`slope_per_epoch` is bytes for a leak, seconds for a slowdown: analysis/units.py). Values are plain strings;
the page escapes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from epochwatch.analysis.units import evidence_unit, fmt_evidence

MAX_ITEMS = 9


def causes(v: Any) -> str:
    """A slowdown's `likely_causes` as 'bytes in /ckpt (detrended, tau 0.96), ...' ('' without)."""
    parts = []
    for c in v[:6] if isinstance(v, list) else []:
        if isinstance(c, Mapping):
            tau = c.get("tau")
            test = f"{c['test']}, " if isinstance(c.get("test"), str) else ""
            parts.append(
                f"{c.get('series')}" + (f" ({test}tau {tau:.2f})" if isinstance(tau, int | float) else "")
            )
    return ", ".join(parts)


def _value(key: str, v: Any, unit: str) -> str:
    if isinstance(v, list):
        if key == "likely_causes":
            return causes(v) or "-"
        if all(not isinstance(x, list | dict) for x in v):
            sep = " – " if len(v) == 2 and key in ("epochs", "slope_ci95") else ", "
            shown = [fmt_evidence(key, x, unit) for x in v[:12]]
            return sep.join(shown) + (", …" if len(v) > 12 else "")
    if isinstance(v, Mapping | list):
        text = orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
        return text if len(text) <= 300 else text[:299] + "…"
    return fmt_evidence(key, v, unit)


# In a list of changes, the key that names each row (the rest is "before -> after").
NAME_KEYS = ("what", "package", "name", "key", "argument", "series", "path")


def _change(key: str, row: Mapping[str, Any], unit: str) -> str:
    """`{"parent": a, "child": b}` (or written_with/loaded_with, was/now) as "a → b"."""
    values = [v for k, v in row.items() if k not in NAME_KEYS]
    if len(values) == 2 and all(not isinstance(v, Mapping | list) for v in values):
        return f"{fmt_evidence(key, values[0], unit)} → {fmt_evidence(key, values[1], unit)}"
    return ", ".join(
        f"{k.replace('_', ' ')} {_value(k, v, unit)}" for k, v in row.items() if k not in NAME_KEYS
    )


def _rows(key: str, v: Any, unit: str) -> list[tuple[str, str]]:
    """One evidence entry as rows: a list of named changes gives a row per change."""
    label = key.replace("_", " ")
    if isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
        named = [x for x in v if any(isinstance(x.get(n), str) for n in NAME_KEYS)]
        if len(named) == len(v):
            names = [next(str(x[n]) for n in NAME_KEYS if isinstance(x.get(n), str)) for x in v[:MAX_ITEMS]]
            return [(f"{label}: {name}", _change(key, x, unit)) for name, x in zip(names, v, strict=False)]
    if isinstance(v, Mapping) and set(v) == {"parent", "child"}:
        before, after = (
            _value(key, v[k], unit) if v[k] not in ([], None) else "none" for k in ("parent", "child")
        )
        return [(label, f"{before} → {after}")]
    if isinstance(v, Mapping) and v and all(not isinstance(x, Mapping | list) for x in v.values()):
        return [
            (label, ", ".join(f"{k.replace('_', ' ')} {fmt_evidence(str(k), x, unit)}" for k, x in v.items()))
        ]
    return [(label, _value(key, v, unit))]


def items(finding: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The evidence's (label, value) rows, the most telling first, at most MAX_ITEMS.

    Lists of changes (restore findings: hyperparameters, versions) give one readable row
    each ("optimizer.beta_1: 0.9 → 0.8"), never raw JSON.
    """
    ev = finding.get("evidence")
    if not isinstance(ev, Mapping):
        return []
    unit = evidence_unit(str(finding.get("kind")), ev)
    first = ("slope_per_epoch", "slope_ci95", "p_value", "epochs", "start", "now", "limit", "epochs_to_limit")
    keys = [k for k in first if k in ev] + [k for k in ev if k not in first]
    out: list[tuple[str, str]] = []
    for k in keys:
        if ev[k] is not None and not ("fits" in ev and k == "epochs"):  # not a fit's own epochs
            out += _rows(str(k), ev[k], unit)
    return out[:MAX_ITEMS]


def raw(finding: Mapping[str, Any]) -> str:
    """The whole evidence as indented JSON, for the page's 'all evidence' fold."""
    ev = finding.get("evidence")
    return orjson.dumps(
        ev if ev is not None else {}, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str
    ).decode()
