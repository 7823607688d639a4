"""Say on stderr, while the run trains, what epochwatch found: where users already look.

One line per new finding (warning and up), one more when an update of it is news (graver,
it names its cause now, or the end's verdict is that it stopped, said whatever its level:
analysis/findings.is_news), and one closing line at the end of
the run: epochs, findings by severity, and the command that shows the details
(`epochwatch report <trace>`), or why nothing could be written.

A finding is made on another thread (online detection, or the daemon's socket) at any
moment, often while Keras redraws its progress bar with '\\r'. Printed then, it lands
inside the bar. So the Console holds each line until the next epoch boundary (the next
epoch's start, before Keras prints its `Epoch n/N` header; the fit's end; the run's end)
and names the moment the finding's numbers are from, as `report` does (the epoch, 1-based
as Keras counts; a loop's fit). A line is at most
LINE_LIMIT characters: what, how much, the consequence (the finding's title); the
evidence and the fix are in the report.

EPOCHWATCH_QUIET=1 silences all of it; EPOCHWATCH_QUIET=<severity> (info, warning,
critical) prints only findings at or above that severity, and the closing line; any other
value is said once and the default (warning) holds.

The Console also keeps the findings in the run's ledger (analysis/ledger.py: each as last
reported, updates replace it), and in a notebook those of every earlier fit of the kernel
(`history`): `findings` gives them all as report-JSON dicts, for `hook.findings()`.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from epochwatch.analysis import frameworks
from epochwatch.analysis.explained import attach_where, where_for
from epochwatch.analysis.findings import RANK, SEVERITIES, VERDICTS, WARNING, Finding
from epochwatch.analysis.ledger import Ledger, counts_text
from epochwatch.report.headline import moment
from epochwatch.text_safety import escape

PREFIX = "epochwatch: "
LINE_LIMIT = 160  # a finding's whole line, prefix included: one line of a wide terminal
_SILENT = len(SEVERITIES)  # a threshold no severity reaches
_DEFAULT = ("", "0", "false", "no", "off")
_QUIET = ("1", "true", "yes", "on")


def threshold(quiet: str | None) -> int:
    """EPOCHWATCH_QUIET -> the lowest severity rank printed (_SILENT: nothing at all); an
    unknown value means the default (see `unknown_quiet`)."""
    value = (quiet or "").strip().lower()
    if value in RANK:
        return RANK[value]
    return _SILENT if value in _QUIET else RANK[WARNING]


def unknown_quiet(quiet: str | None) -> str | None:
    """The line that says an EPOCHWATCH_QUIET value means nothing, or None when it is known."""
    value = (quiet or "").strip().lower()
    if value in _DEFAULT or value in _QUIET or value in RANK:
        return None
    return (
        f"EPOCHWATCH_QUIET={escape(quiet)[:40]!r} is not a setting; use 1 (silent) or the lowest "
        "severity to say (info, warning, critical); saying warnings and up"
    )


def one_line(text: str, limit: int = 300) -> str:
    """Printable on one line: control characters (escapes, newlines) shown, not obeyed."""
    out = escape(text)
    return out if len(out) <= limit else out[: limit - 3] + "..."


# Findings whose detail is their cause, what the user changes: a retrace storm's argument
# ("argument `epoch` changes value") matters more on the line than its cost ("RSS +96 MiB").
CAUSE_IN_DETAIL = frozenset({"retrace_storm"})


def short_title(title: str, room: int, kind: str = "", stopped: bool = False) -> str:
    """A title that fits `room`: titles read `what, how much: detail; consequence`, so the
    detail goes first (the report has it), or the consequence where the detail is the
    cause (CAUSE_IN_DETAIL); the verdict that it `stopped` keeps its last clause, which says
    so ("no new trace after epoch 7"); then the end is cut."""
    if len(title) <= room:
        return title
    what, colon, rest = title.partition(": ")
    detail, semi, consequence = rest.partition("; ")
    if not (colon and semi):
        return title
    if stopped:
        return f"{what}; {rest.rpartition('; ')[2]}"
    return f"{what}: {detail}" if kind in CAUSE_IN_DETAIL else f"{what}; {consequence}"


def where_short(found: Mapping[str, Any]) -> str:
    """The look inside in a few words for a finding's line: the top place (the report has
    the rest): '62% in Audit.on_train_batch_end (train.py:12)', 'at train.py:31 Keep.on_epoch_end'."""
    places = found.get("places") or []
    top = places[0] if places and isinstance(places[0], Mapping) else None
    if top is not None and "share" in top:
        label, where = str(top.get("label")), str(top.get("site") or "")
        site = f" ({where})" if where and where not in label else ""  # user code: in its label
        into = " " if label.startswith("inside ") else " in "  # not "92% in inside the compiled step"
        return f"{round(100 * float(top['share']))}%{into}{label}{site}"
    if top is not None and top.get("site"):
        return f"at {top['site']} {top.get('function') or ''}".rstrip()
    return str(found.get("summary") or "")


@dataclass
class Fit:
    """One run of the process (in a notebook, one fit) and its findings as last reported."""

    run_id: str | None = None
    trace: str | None = None
    ledger: Ledger = field(default_factory=Ledger)
    explains: list[Mapping[str, Any]] = field(default_factory=list)  # `explain` records: `where`
    said: set[tuple[str, str | None]] = field(default_factory=set)  # findings with a line already

    def findings(self) -> list[dict[str, Any]]:
        found = [{**f.to_dict(), "source": "trace", "run_id": self.run_id} for f in self.ledger.findings()]
        attach_where(found, self.explains)
        frameworks.after_look_inside(found)
        return found


class Console:
    """Collects a run's findings; says each new one at or above the threshold once, at the
    next epoch boundary."""

    def __init__(self, quiet: str | None = None, stream: TextIO | None = None) -> None:
        self.level = threshold(quiet)
        self._stream = stream
        self.current = Fit()
        self.history: list[Fit] = []  # the kernel's earlier fits (a notebook), oldest first
        self._held: list[Finding] = []
        self._held_lines: list[str] = []  # "explained:" lines, said at the boundary too
        self._lock = threading.Lock()
        # What the hook saw when it saw no training ("no training seen: 1,250 predict calls,
        # RSS +19 MiB"), leading the closing line; set by the hook (issue 24).
        self.seen: Callable[[], str | None] | None = None
        complaint = unknown_quiet(quiet)
        if complaint:
            self._say(complaint)

    @property
    def ledger(self) -> Ledger:
        return self.current.ledger

    @property
    def trace(self) -> str | None:
        return self.current.trace

    @trace.setter
    def trace(self, value: str | None) -> None:
        self.current.trace = value

    @property
    def silent(self) -> bool:
        return self.level >= _SILENT

    @property
    def findings(self) -> list[dict[str, Any]]:
        """Every fit's findings as report-JSON dicts (with `run_id`), fit by fit, each in the
        order first found, as last reported."""
        return [f for fit in (*self.history, self.current) for f in fit.findings()]

    @property
    def traces(self) -> list[str]:
        """Every fit's trace that is known, oldest first."""
        return [fit.trace for fit in (*self.history, self.current) if fit.trace]

    def reset(self, run_id: str | None = None) -> None:
        """A new run in the same process (a notebook's next fit): the last one is kept."""
        with self._lock:
            if self.current.run_id is not None or len(self.current.ledger):
                self.history.append(self.current)
            self.current = Fit(run_id)

    def observe(self, rec: Mapping[str, Any]) -> None:
        """A `finding` or `finding_update` record, from this process or from the daemon, on
        any thread; repeats are ignored, updates replace what they update. News is held for
        the next boundary()."""
        taken = self.ledger.take(rec)
        if taken is None:
            return
        finding, news = taken
        # Said before, a verdict milder than the level is still said: the line it follows was.
        if news and (RANK.get(finding.severity, 0) >= self.level or finding.key in self.current.said):
            with self._lock:
                self._held.append(finding)

    def explained(self, rec: Mapping[str, Any]) -> None:
        """An `explain` record: its finding (now or when it comes) gets `where`; a short line
        at the next boundary when a finding of that kind is already known and said."""
        with self._lock:
            self.current.explains.append(rec)
        kind, summary = rec.get("explains"), rec.get("summary")
        known = [f for f in self.ledger.findings() if f.kind == kind]
        if known and rec.get("where") and summary and RANK.get(known[0].severity, 0) >= self.level:
            causes = known[0].evidence.get("likely_causes")
            line = self._explained_line(str(kind), where_for(str(kind), self.current.explains, causes) or rec)
            with self._lock:
                if not any(f.kind == kind for f in self._held):  # else its own line says where
                    self._held_lines.append(line)

    def boundary(self) -> None:
        """An epoch boundary, where a line of our own cannot split Keras' progress bar: say
        what is held."""
        with self._lock:
            held, self._held = self._held, []
            lines, self._held_lines = self._held_lines, []
        # Each finding once, as last reported: updates that came since it was held (not news
        # enough for a line of their own) are what `report` shows, so the line says them too.
        held = [self.ledger.get(f.key) or f for f in {f.key: f for f in held}.values()]
        for finding in held:
            if finding.key not in self.current.said:  # its first line, whatever update it is at
                finding = replace(finding, update=0)
            self.current.said.add(finding.key)
            self._say(self.finding_line(finding))
            found = where_for(finding.kind, self.current.explains, finding.evidence.get("likely_causes"))
            if found and not self._fits_on_line(finding, found):  # the look inside: its own line
                self._say(self._explained_line(finding.kind, found))
        for line in lines:
            self._say(line)

    def finding_line(self, finding: Finding) -> str:
        """`<severity> <kind> at epoch <n>: <title>`, at most LINE_LIMIT with the prefix; the
        epoch (or fit) is the one its numbers are from, none for a finding of no epoch. Where
        the look inside found it follows when it fits whole; else it gets a line of its own."""
        head, title = self._head(finding), escape(finding.title)
        room = LINE_LIMIT - len(PREFIX) - len(head)
        found = where_for(finding.kind, self.current.explains, finding.evidence.get("likely_causes"))
        if found and self._fits_on_line(finding, found):
            return one_line(head + title + f"; {escape(where_short(found))}", LINE_LIMIT - len(PREFIX))
        stopped = any(finding.evidence.get(k) for k in VERDICTS)  # its last clause says the verdict
        return one_line(head + short_title(title, room, finding.kind, stopped), LINE_LIMIT - len(PREFIX))

    def _head(self, finding: Finding) -> str:
        # The moment its numbers are from, as `report` says it (not the epoch Keras printed
        # last: a finding judged on epoch 4 said "at epoch 5" live and "@epoch 4" in report).
        when = moment(
            {"evidence": finding.evidence, "epoch": finding.epoch, "as_of": finding.as_of}, seen=False
        )
        where = f" at {when}" if when else ""
        again = " (update)" if finding.update else ""
        return f"{finding.severity} {finding.kind}{where}{again}: "

    def _fits_on_line(self, finding: Finding, found: Mapping[str, Any]) -> bool:
        text = self._head(finding) + escape(finding.title) + f"; {escape(where_short(found))}"
        return len(PREFIX) + len(text) <= LINE_LIMIT

    @staticmethod
    def _explained_line(kind: str, found: Mapping[str, Any]) -> str:
        return one_line(f"{kind} explained: {where_short(found)}", LINE_LIMIT - len(PREFIX))

    def closing_line(
        self, epochs: int, trace: str | None, unwritten: str | None = None, windows: int = 0
    ) -> str:
        """'5 epochs, 4 windows of calls, 1 warning; details: ...'. `windows`: of the epoch
        records, those of inference calls (after a fit, or of a run that only served)."""
        if unwritten and not trace:
            return one_line(f"nothing was traced or checked: {unwritten}", 1000)
        found = counts_text(self.ledger.counts())
        where = f"; details: epochwatch report {trace}" if trace else ""
        if unwritten:
            where += f"; the trace stops early: {unwritten}"
        trained = epochs - min(windows, epochs)
        counted = [f"{trained} {'epoch' if trained == 1 else 'epochs'}"] if trained or not windows else []
        if windows:
            counted.append(f"{windows} {'window' if windows == 1 else 'windows'} of calls")
        seen = self.seen() if self.seen is not None else None
        lead = f"{seen}; " if seen else ""
        return one_line(f"{lead}{', '.join(counted)}, {found}{where}", 1000)

    def close(self, epochs: int, trace: str | None, unwritten: str | None = None, windows: int = 0) -> None:
        """The run ended: what is held, then one line, unless silenced. `unwritten`: why
        the trace could not be written (then nothing was checked either)."""
        self.boundary()
        if not self.silent:
            self._say(self.closing_line(epochs, trace, unwritten, windows))

    def _say(self, line: str) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()  # what the script printed first (Keras' bar) comes first
        with contextlib.suppress(Exception):
            stream = self._stream or sys.stderr
            stream.write(PREFIX + line + "\n")
            stream.flush()
