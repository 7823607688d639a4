"""Findings: what a detector says, as a frozen record with evidence and a fix.

Every finding carries numbers (`evidence`), a concrete `hint`, the `target` it is about
(a function, a directory, a device; None for the run as a whole), the `epoch` at
which it was first detected and the epoch `as_of` which its title and evidence were
computed (later than `epoch` for an episode's update): one moment per finding, so a
title and its card never quote two epochs' numbers. docs/findings.md describes every kind.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

# The severities, least severe first: the one home of this vocabulary (check's --fail-on,
# compare, top, the HTML report and the daemon's metrics all import it from here).
INFO = "info"
WARNING = "warning"
CRITICAL = "critical"
SEVERITIES = (INFO, WARNING, CRITICAL)
RANK = {name: i for i, name in enumerate(SEVERITIES)}


def severity_rank(severity: str) -> int:
    """0 for info and for anything unknown (a trace may carry any string), then 1, 2."""
    return RANK.get(severity, 0)


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    title: str
    evidence: dict[str, Any] = field(default_factory=dict)
    hint: str = ""
    target: str | None = None
    epoch: int | None = None
    # Consecutive evaluations this finding must hold before it is reported, when its own
    # evidence needs fewer than its detector's persistence (a blatant leak in a short run).
    hold: int | None = field(default=None, compare=False, repr=False)
    # Episodes: 0 for the first report; n for the n-th update of the same (kind, target)
    # (the problem grew, or got worse); `ended_epoch` once it is over ("recovered at ...").
    update: int = 0
    ended_epoch: int | None = None
    # The epoch whose numbers the title and evidence quote (None: `epoch`, the first report's).
    as_of: int | None = None

    @property
    def moment(self) -> int | None:
        """The epoch the title and evidence are as of (0-based, as in the trace)."""
        return self.epoch if self.as_of is None else self.as_of

    @property
    def key(self) -> tuple[str, str | None]:
        """Findings are reported once per kind and target."""
        return (self.kind, self.target)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "severity": self.severity,
            "severity_rank": severity_rank(self.severity),  # 0 info, 1 warning, 2 critical: sortable
            "title": self.title,
            "evidence": clean(self.evidence),
            "hint": self.hint,
            "target": self.target,
            "epoch": self.epoch,
            "as_of": self.moment,
        }
        if self.update:
            out["update"] = self.update
        if self.ended_epoch is not None:
            out["ended_epoch"] = self.ended_epoch
        return out

    def to_record(self, run_id: str) -> dict[str, Any]:
        """The `finding` trace record (same fields as in report JSON); an episode's update
        (`update` > 0) is a `finding_update` record."""
        type_ = "finding_update" if self.update else "finding"
        return {"type": type_, "run_id": run_id, "t": time.time(), **self.to_dict()}


def from_record(rec: Mapping[str, Any]) -> Finding:
    """A finding from a `finding` record in a trace (emitted online by the hook or daemon)."""
    evidence = rec.get("evidence")
    epoch = rec.get("epoch")
    target = rec.get("target")
    severity = rec.get("severity")
    update = rec.get("update")
    ended = rec.get("ended_epoch")
    as_of = rec.get("as_of")
    return Finding(
        kind=_text(rec.get("kind"), "unknown"),
        severity=severity if isinstance(severity, str) and severity in RANK else INFO,
        title=_text(rec.get("title"), ""),
        evidence=dict(evidence) if isinstance(evidence, Mapping) else {},
        hint=_text(rec.get("hint"), ""),
        target=None if target is None else _text(target, ""),
        epoch=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
        update=update if isinstance(update, int) and not isinstance(update, bool) and update > 0 else 0,
        ended_epoch=ended if isinstance(ended, int) and not isinstance(ended, bool) else None,
        as_of=as_of if isinstance(as_of, int) and not isinstance(as_of, bool) else None,
    )


def _text(value: Any, default: str) -> str:
    """A string field of a record: the string, a number as text, `default` when absent, and
    only a type name for anything else. A trace is anyone's file: str() of a list nested a
    thousand deep raised RecursionError and stopped `report` on the whole trace."""
    if value is None:
        return default
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return f"<{type(value).__name__}>"


UPDATE_GROWTH = 1.0  # an episode is updated when its excess over the level before it doubled
FINAL_GROWTH = 0.1  # ...and at the run's end when it grew by a tenth: the verdict's numbers are the end's
LEVEL_GROWTH = 0.25  # where no level before it is known: when its value grew by a quarter


def grew_since(last: Finding, now: float, final: bool = False) -> bool:
    """Whether an episode's measure (`evidence.current`) grew enough since `last` was
    reported for an update (analysis/engine.py): its excess over the level before the
    problem (`evidence.base`), not the value itself. A leak of +40 MiB over a 750 MiB
    process that went on to +160 MiB had grown 15%, never the quarter that an update once
    needed, so its finding kept saying "747 MiB -> 787 MiB" beside epochs at 905 MiB."""
    before, base = last.evidence.get("current"), last.evidence.get("base")
    if not _real(before) or now != now:
        return False
    if _real(base) and before > base:
        return now - base > (before - base) * (1 + (FINAL_GROWTH if final else UPDATE_GROWTH))
    return before > 0 and now > before * (1 + (FINAL_GROWTH if final else LEVEL_GROWTH))


def _real(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def newly_explained(before: Finding, after: Finding) -> bool:
    """`after` names what `before` could not: its likely causes, or that the process waits.
    A finding raised early (a slowdown at epoch 7) often comes before enough epochs to test
    a cause; the update that names one is worth an update of its own."""
    return any(
        bool(after.evidence.get(k)) and not before.evidence.get(k) for k in ("likely_causes", "waiting")
    )


def is_news(before: Finding | None, after: Finding) -> bool:
    """Whether `after` is worth saying again where people look (console, TensorBoard, W&B):
    the first report, a graver severity, the first that names its cause, or one of the end's
    VERDICTS, ended or not (a critical storm said live, "1 warning" in the closing line: why).
    Growth alone is in the trace, the report and `hook.findings()`, not said again."""
    if before is None:
        return True
    if after.update and after.update <= before.update:
        return False  # a repeat (the daemon's copy of what was already said)
    return (
        severity_rank(after.severity) > severity_rank(before.severity)
        or newly_explained(before, after)
        or newly_judged(before, after)
    )


def newly_stopped(before: Finding, after: Finding) -> bool:
    """`after` is the verdict that `before`'s problem stopped (`evidence.stopped_growing`)."""
    return bool(after.evidence.get("stopped_growing")) and not before.evidence.get("stopped_growing")


# The run's end's verdicts that take back part of what was said: it stopped growing, a step
# that did not last (its two levels mix), an ended slowdown judged by what it cost.
VERDICTS = ("stopped_growing", "not_lasting", "ended_cost")


def newly_judged(before: Finding, after: Finding) -> bool:
    """`after` is one of the end's VERDICTS on `before`, said for the first time."""
    return any(bool(after.evidence.get(k)) and not before.evidence.get(k) for k in VERDICTS)


def clean(value: Any) -> Any:
    """JSON-safe evidence: no NaN or infinities (absent instead), floats to 6 significant digits."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.6g}")
    if isinstance(value, Mapping):
        return {
            str(k): clean(v) for k, v in value.items() if not (isinstance(v, float) and not math.isfinite(v))
        }
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then by the epoch they were found, then by kind."""
    return sorted(
        findings,
        key=lambda f: (
            -severity_rank(f.severity),
            f.epoch if f.epoch is not None else 1 << 60,
            f.kind,
            f.target or "",
        ),
    )
